"""What a repro is asked to do: the repro file's schema and the command-line options parsed into it.

Every input error is a :class:`ReproError` whose one-line message names the option or file and
the field, so the CLI can print it and exit 2 before anything starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from celery_chaos.core.scenario_base import first_error
from celery_chaos.core.scenario_data import Invariant, ServicesSpec, SetupStep, check_app_state
from celery_chaos.core.scenario_parts import Pool, split_worker_args
from celery_chaos.core.yaml_input import InputError, read_yaml
from celery_chaos.faults.registry import repro_kinds
from celery_chaos.pydantic_compat import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

FAULTS: tuple[str, ...] = repro_kinds()  # the kinds whose module offers them to repro
FaultKind = Literal[FAULTS]  # type: ignore[valid-type]
REPLACEMENT_DELAY = 0.5
# The repro "passes" only when the task came through exactly once, left nothing stuck, its
# result was stored and every invariant of the repro file held.
EXPECT = {
    "lost": 0,
    "pending": 0,
    "dead_lettered": 0,
    "duplicate_executions": 0,
    "failed": 0,
    "redelivery_loop": 0,
    "duplicate_side_effects": 0,
    "stuck_locks": 0,
    "invariant_violations": 0,
    "result_not_stored": 0,
}
WORKFLOW_EXPECT = {"workflow_broken": 0, "workflow_pending": 0, "workflow_duplicated": 0}
EXIT_OK, EXIT_UNSAFE, EXIT_UNUSABLE = 0, 1, 2


class ReproError(ValueError):
    """The repro cannot be set up or carried out; the message says which input and why."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedisProbe(Strict):
    """The old form of a Redis invariant: keys matching a pattern (``lock``: must be none left;
    ``counter``, ``value``: reported). Still accepted; :func:`probe_invariant` converts it."""

    redis_key_pattern: str = Field(min_length=1)
    kind: Literal["lock", "counter", "value"] = "value"
    url: str | None = None  # default: the harness store, what celery_chaos.store() returns
    name: str | None = None


class SqlProbe(Strict):
    """The old form of an SQL invariant: one read-only query against a SQLite database
    (``sqlite:///path``), reported as its row count. Still accepted and converted."""

    sql: str = Field(min_length=1)
    url: str = Field(pattern=r"^sqlite:///")
    name: str | None = None


class ReproSpec(Strict):
    """A repro file (``--file``): probes, and optionally defaults for every command-line option."""

    app: str | None = None
    task: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    fault: FaultKind = "kill_child"
    at: str | None = None
    celery: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    workers: int = Field(default=1, ge=1)
    concurrency: int | None = Field(default=None, ge=1)  # None: 2, or -c in worker_args
    pool: Pool | None = None  # None: prefork, or -P in worker_args
    # Your team's own worker command line (``celery -A proj worker -O fair ...`` or its options;
    # a string is split like a shell): started as you start it (docs/worker-command.md).
    worker_args: list[str] | str = Field(default_factory=list)
    # partition and latency: how long the fault lasts, and the delay latency adds
    duration: float = Field(default=5.0, gt=0, le=3600)
    latency: float = Field(default=0.2, gt=0, le=60)
    grace: float = Field(default=30.0, ge=0, le=3600)  # evict: seconds from SIGTERM to SIGKILL
    timeout: float = Field(default=60.0, gt=0)
    # None: the kind of the app's own broker_url (amqp -> rabbitmq, redis -> redis)
    broker: Literal["redis", "rabbitmq"] | None = None
    # The app's state, as in a scenario: services started for the repro, setup steps before the
    # workers, invariants read after the run (a ``redis`` one without ``url`` and without
    # ``services.redis`` reads the harness store, what celery_chaos.store() returns).
    services: ServicesSpec = Field(default_factory=ServicesSpec)
    setup: list[SetupStep] = Field(default_factory=list, max_length=100)
    invariants: list[Invariant] = Field(default_factory=list, max_length=100)
    # The old name and form of invariants: converted into ``invariants`` when the file is read.
    probes: list[RedisProbe | SqlProbe] = Field(default_factory=list)
    # A chain/group/chord in the scenario's workload form ({chain: [...]}, ...): the repro sends
    # it and aims the fault at its task number ``member`` (file order, the chord callback last).
    workflow: dict[str, Any] | None = None
    member: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _probes_become_invariants(self) -> ReproSpec:
        """Old ``probes`` join ``invariants`` (once: a converted spec has none left)."""
        if self.probes:
            self.invariants = [*self.invariants, *map(probe_invariant, self.probes)]
            self.probes = []
        check_app_state(_StoreAware(self))
        return self


class _StoreAware:
    """The spec as :func:`check_app_state` sees it, minus the redis invariants that read the
    harness store (no url, no services.redis): those need no service."""

    def __init__(self, spec: ReproSpec) -> None:
        self.services, self.setup = spec.services, spec.setup
        self.invariants = [i for i in spec.invariants if not reads_store(spec, i)]
        for index, invariant in enumerate(spec.invariants):
            if invariant.during and reads_store(spec, invariant):
                raise ValueError(
                    f"invariants[{index}].during: a harness-store invariant (redis without url or"
                    " services.redis) is read after the run only"
                )


def reads_store(spec: ReproSpec, invariant: Invariant) -> bool:
    """Whether repro reads ``invariant`` from the harness store itself (the run cannot)."""
    return invariant.kind == "redis" and invariant.url is None and spec.services.redis is None


def scenario_app_state(spec: ReproSpec) -> dict[str, Any]:
    """The repro's services, setup and the invariants the run reads, as scenario keys."""
    return {
        "services": spec.services,
        "setup": spec.setup,
        "invariants": [i for i in spec.invariants if not reads_store(spec, i)],
    }


def probe_invariant(probe: RedisProbe | SqlProbe) -> Invariant:
    """An old probe as the invariant it means: a ``lock`` probe must find no key left; the
    others had no expectation and are reported (key count, row count), never broken."""
    if isinstance(probe, SqlProbe):
        data: dict[str, Any] = {
            "name": (probe.name or probe.sql)[:200],
            "sql": f"SELECT count(*) FROM ({probe.sql.strip().rstrip(';')}) AS probe",
            "url": probe.url,
            "expect": {"min": 0},
        }
    else:
        name = (probe.name or probe.redis_key_pattern)[:200]
        data = {"name": name, "redis": probe.redis_key_pattern}
        data |= {"url": probe.url, "expect": 0 if probe.kind == "lock" else {"min": 0}}
    return Invariant.model_validate(data)


# --- inputs ------------------------------------------------------------------------------------


def parse_json_value(text: str) -> Any:
    """``true``/``5``/``{"a": 1}`` as JSON, anything else as the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ReproError(f"{option} {text!r}: expected KEY=VALUE")
    return key.strip(), value


def known_setting(key: str, source: str = "--set") -> None:
    """Refuse an override Celery does not know: a typo would silently test nothing."""
    from celery_chaos.run import preflight

    problem = preflight.setting_problem(key)
    if problem is not None:
        raise ReproError(f"{source} {key}: {problem}")


def parse_settings(items: tuple[str, ...]) -> dict[str, Any]:
    settings = {}
    for item in items:
        key, value = parse_assignment(item, "--set")
        known_setting(key)
        settings[key] = parse_json_value(value)
    return settings


def parse_trigger(text: str) -> dict[str, Any]:
    """``checkpoint:NAME`` or ``seconds:2.5`` as a scenario trigger aimed at the task."""
    kind, sep, value = text.partition(":")
    if sep and kind == "checkpoint" and value:
        return {"task": 0, "checkpoint": value}
    if sep and kind == "seconds":
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return {"at": seconds}
    raise ReproError(f"--at {text!r}: expected checkpoint:NAME or seconds:S (e.g. seconds:2.5)")


def workflow_member(workflow: dict[str, Any], member: int) -> Any:
    """The task node number ``member`` of ``workflow`` (validated like a scenario's workload)."""
    from celery_chaos.core.scenario_parts import WorkloadItem
    from celery_chaos.core.workflows import leaves

    if "task" in workflow:
        raise ReproError("workflow: expected a chain, group or chord (a task goes in --task)")
    try:
        item = WorkloadItem.model_validate(workflow)
    except ValidationError as error:
        raise ReproError(f"workflow.{first_error(error)}") from None
    tasks = leaves(item)
    if member >= len(tasks):
        raise ReproError(
            f"--member {member}: the workflow has {len(tasks)} tasks (0-{len(tasks) - 1})"
        )
    return tasks[member]


def _validated(data: Any, source: str) -> ReproSpec:
    if not isinstance(data, dict):
        raise ReproError(f"{source}: expected a mapping (probes: [...], app: ..., ...)")
    try:
        return ReproSpec.model_validate(data)
    except ValidationError as error:
        raise ReproError(f"{source}: {first_error(error)}") from None


def load_spec(path: Path | None) -> ReproSpec:
    if path is None:
        return ReproSpec()
    try:
        data = read_yaml(path) or {}
    except InputError as error:
        raise ReproError(str(error)) from None
    return _validated(data, str(path))


def _plain(spec: ReproSpec) -> dict[str, Any]:
    """The spec as data to validate again: setup steps and invariants as written (a dumped
    default, a sql step's ``timeout``, would read as given)."""
    data = spec.model_dump()
    for key in ("setup", "invariants"):
        data[key] = [item.model_dump(exclude_unset=True) for item in getattr(spec, key)]
    return data


def worker_command(spec: ReproSpec) -> ReproSpec:
    """``worker_args`` split (see :func:`split_worker_args`): its -A/-P/-c set ``app``, ``pool``
    and ``concurrency`` unless those say otherwise (an error); the rest stays, in order."""
    try:
        adopted, rest = split_worker_args(spec.worker_args)
    except ValueError as error:
        raise ReproError(f"--worker-args: {error}") from None
    for field, value in adopted.items():
        given = getattr(spec, field)
        if given is not None and str(given) != value:
            raise ReproError(f"--worker-args: {field} {value}, but --{field} {given}: give it once")
    return _validated(_plain(spec) | adopted | {"worker_args": rest}, "--worker-args")


def merge(spec: ReproSpec, **given: Any) -> ReproSpec:
    """The file's values overridden by the options given on the command line (not None)."""
    data = _plain(spec)
    for key, value in given.items():
        if value is None:
            continue
        data[key] = data[key] | value if key in ("celery", "env") else value
    merged = worker_command(_validated(data, "command line"))
    if merged.workflow is not None:
        merged.task = workflow_member(merged.workflow, merged.member).task
    for name in ("app", "task", "at"):
        if getattr(merged, name) is None:
            raise ReproError(f"--{name}: required (on the command line or in --file)")
    for key in merged.celery:
        known_setting(key, "celery:")
    parse_trigger(merged.at or "")
    return merged
