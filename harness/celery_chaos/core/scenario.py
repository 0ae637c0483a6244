"""Scenario files: the YAML schema, its validation, and loading a suite from paths.

A scenario says which Celery settings to test (``celery``), the broker (``broker``), the workers
(``workers``), what to dispatch (``workload``), which faults to inject when (``faults``), what
verdicts to expect (``expect``), and the app's own state: its ``services``, ``setup`` steps and
``invariants`` (:mod:`celery_chaos.core.scenario_data`). Every key is documented in
docs/reference/scenario.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

from celery_chaos.core.checker import DEFAULT_REDELIVERY_THRESHOLD
from celery_chaos.core.reachability import check_fault_refs, check_reachable
from celery_chaos.core.scenario_base import (
    MAX_FAULTS,
    MAX_TASKS,
    MAX_WORKERS,
    Count,
    ExpectWhen,
    Range,
    ScenarioError,
    Seconds,
    Strict,
    check_expectation,
    first_error,
)
from celery_chaos.core.scenario_data import Invariant, ServicesSpec, SetupStep, check_app_state
from celery_chaos.core.scenario_parts import (
    BrokerSpec,
    CanvasNode,
    Fault,
    ResultsSpec,
    StormSpec,
    WorkersSpec,
    WorkloadItem,
)
from celery_chaos.core.workflows import needs_results
from celery_chaos.core.yaml_input import InputError, read_yaml
from celery_chaos.faults.params import MAX_SECONDS
from celery_chaos.faults.registry import FAULTS
from celery_chaos.pydantic_compat import Field, ValidationError, model_validator


class Scenario(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=200)
    description: str
    celery: dict[str, Any] = Field(default_factory=dict)
    extension_settings: list[str] = Field(default_factory=list)
    broker: BrokerSpec = Field(default_factory=BrokerSpec)
    workers: WorkersSpec = Field(default_factory=WorkersSpec)
    workload: list[WorkloadItem] = Field(min_length=1)
    faults: list[Fault] = Field(default_factory=list, max_length=MAX_FAULTS)
    expect: dict[str, Count | Range] = Field(default_factory=dict)
    expect_when: list[ExpectWhen] = Field(default_factory=list, max_length=100)
    timeout: float = Field(default=60.0, gt=0, le=MAX_SECONDS)
    settle: Seconds = 1.0
    redelivery_threshold: int = Field(default=DEFAULT_REDELIVERY_THRESHOLD, ge=1, le=10_000)
    seed: int | None = None
    # ``app``: keep the app's own result backend (the harness runs none for it).
    results: ResultsSpec | Literal["app"] | None = None
    services: ServicesSpec = Field(default_factory=ServicesSpec)
    setup: list[SetupStep] = Field(default_factory=list, max_length=100)
    invariants: list[Invariant] = Field(default_factory=list, max_length=100)
    # Timing-sensitive under load: ``run --jobs N`` runs it alone, before the parallel batch.
    exclusive: bool = False
    storm: StormSpec | None = None
    # Every non-zero anomaly verdict must be named in expect/expect_when (README: Strict).
    # None: as the run says (--strict); false: never, even under --strict (e.g. a storm, whose
    # expectation is only the settings' promise and whose other findings are measured).
    strict: bool | None = None

    @model_validator(mode="after")
    def _workflow_refs(self) -> Scenario:
        results_on_broker = (
            isinstance(self.results, ResultsSpec) and self.results.server == "broker"
        )
        if results_on_broker and self.broker.kind == "rabbitmq":
            raise ValueError(
                "results.server: broker needs a Redis broker (RabbitMQ has no databases);"
                " use server: ledger"
            )
        for i, item in enumerate(self.workload):
            if not isinstance(self.results, ResultsSpec) and needs_results(item):
                raise ValueError(
                    f"workload[{i}].chord: a chord needs a result backend the harness runs;"
                    " add results: {server: ledger} (or server: broker)"
                )
            fault = item.revoke.after_fault if item.revoke else None
            if fault is not None and fault >= len(self.faults):
                raise ValueError(
                    f"workload[{i}].revoke.after_fault: {fault}: no such fault"
                    f" (the scenario has {len(self.faults)})"
                )
        return self

    @model_validator(mode="after")
    def _topology_of_faults(self) -> Scenario:
        for i, fault in enumerate(self.faults):
            needs = FAULTS[fault.kind].needs_topology
            if needs is not None and self.broker.topology != needs:
                raise ValueError(
                    f"faults[{i}].kind: {fault.kind} needs broker.topology {needs}"
                    f" (this broker's is {self.broker.topology})"
                )
        return self

    @model_validator(mode="after")
    def _storm_fits(self) -> Scenario:
        if self.storm is not None:
            if self.faults:
                raise ValueError("storm: give a storm or a faults list, not both")
            if self.storm.duration >= self.timeout:
                raise ValueError(
                    f"storm.duration: {self.storm.duration:g}s is not before the timeout"
                    f" ({self.timeout:g}s): the run would end before the storm does"
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _satisfiable_expectations(cls, data: Any) -> Any:
        """Each ``expect`` entry names a verdict and can be met; checked before the schema so
        the message names ``expect.<verdict>`` rather than a member of the ``int | Range``."""
        expect = data.get("expect") if isinstance(data, dict) else None
        if isinstance(expect, dict):
            for verdict, rule in expect.items():
                check_expectation(verdict, rule)
        _check_results(data.get("results") if isinstance(data, dict) else None)
        return data

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        """Cross-field checks: every message names its own field path."""
        total = self.task_count
        if total > MAX_TASKS:
            raise ValueError(
                f"workload: {total} tasks in all; a scenario dispatches at most {MAX_TASKS}"
            )
        for name in self.extension_settings:
            if name not in self.celery:
                raise ValueError(f"extension_settings: {name!r} is not a key of celery")
        workers = self.workers_in_all
        if workers > MAX_WORKERS:
            raise ValueError(f"faults: {workers} workers in all; at most {MAX_WORKERS}")
        for i, fault in enumerate(self.faults):
            check_fault_refs(i, fault, total, workers)
        check_reachable(self)
        check_app_state(self)
        return self

    @property
    def task_count(self) -> int:
        return sum(item.count * item.members for item in self.workload)

    @property
    def workers_in_all(self) -> int:
        """Workers that will have existed by the end: the initial ones plus one per
        ``start_worker``/``restart_worker`` fault (worker indexes count up from 0)."""
        started = sum(1 for f in self.faults if FAULTS[f.kind].starts_worker)
        return self.workers.count + started


def _check_results(results: Any) -> None:
    """``results`` is ``app`` or a ResultsSpec mapping; checked before the union so the
    message names ``results.<key>`` rather than a member of the union."""
    if results is None or results == "app":
        return
    if not isinstance(results, dict):
        raise ValueError(
            f"results: {results!r}: expected app (the app's own result backend)"
            " or {server: ledger|broker, db: N}"
        )
    try:
        ResultsSpec.model_validate(results)
    except ValidationError as error:
        raise ValueError(f"results.{first_error(error)}") from None


def parse_scenario(data: Any, source: str) -> Scenario:
    """Validate parsed YAML; errors name ``source``, the field path and what was expected."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: (top level): expected a mapping of scenario keys")
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(f"{source}: {first_error(error)}") from None


def load_file(path: Path) -> Scenario:
    """Read, parse (strictly: see :mod:`celery_chaos.core.yaml_input`) and validate one file."""
    try:
        data = read_yaml(path)
    except InputError as error:
        raise ScenarioError(str(error)) from None
    return parse_scenario(data, str(path))


def discover(paths: list[Path]) -> list[Path]:
    """Scenario files under ``paths``: files as given, folders' own *.yaml/*.yml (not their
    subfolders, so ``scenarios/`` stays the default suite and ``scenarios/docker-only/`` is opt-in).
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        elif path.exists():
            found.append(path)
        else:
            raise ScenarioError(f"{path}: no such file or folder")
    return found


def load_suite(
    paths: list[Path],
    only: list[str] | None = None,
    check: Callable[[Scenario, str], None] | None = None,
) -> list[Scenario]:
    """Load every scenario under ``paths``; names must be unique; ``only`` filters by name.

    ``check(scenario, source)`` (e.g. :func:`celery_chaos.run.preflight.preflight`) then runs
    on each selected scenario, after every file passed the schema: a typo anywhere is reported
    before the slower checks import Celery or the user's app."""
    loaded: list[tuple[Scenario, Path]] = []
    seen: dict[str, Path] = {}
    for path in discover(paths):
        scenario = load_file(path)
        if scenario.name in seen:
            raise ScenarioError(
                f"{path}: name: duplicate scenario name {scenario.name!r}"
                f" (also in {seen[scenario.name]})"
            )
        seen[scenario.name] = path
        loaded.append((scenario, path))
    if only:
        missing = sorted(set(only) - set(seen))
        if missing:
            raise ScenarioError(f"--only: no scenario named {missing[0]!r}")
        loaded = [(s, path) for s, path in loaded if s.name in only]
    for scenario, path in loaded if check else []:
        check(scenario, str(path))
    return [scenario for scenario, _ in loaded]


for _model in (CanvasNode, WorkloadItem, Scenario):
    _model.model_rebuild()


BROKER_KINDS: tuple[str, ...] = get_args(BrokerSpec.model_fields["kind"].annotation)


def with_broker_kind(scenario: Scenario, kind: str | None) -> Scenario:
    """``scenario`` on another broker kind (``--broker``), so its ``expect_when`` rules follow
    the broker it really runs on. ``None`` keeps the scenario's own, and so does a scenario
    whose file names its ``broker.kind`` (it is about that broker, e.g. quorum queues)."""
    if kind is None or kind == scenario.broker.kind or "kind" in scenario.broker.model_fields_set:
        return scenario
    if isinstance(scenario.results, ResultsSpec) and scenario.results.server == "broker":
        return scenario  # its results live in the broker's Redis: it is about that Redis
    broker = BrokerSpec.model_validate(scenario.broker.model_dump() | {"kind": kind})
    return scenario.model_copy(update={"broker": broker})


# This module's own names: the schema's parts are imported from their homes (scenario_base,
# scenario_parts, faults.params), never through here.
__all__ = [
    "BROKER_KINDS",
    "Scenario",
    "discover",
    "load_file",
    "load_suite",
    "parse_scenario",
    "with_broker_kind",
]
