"""Scenario files: the YAML schema, its validation, and loading a suite from paths.

A scenario says which Celery settings to test (``celery``), the broker (``broker``), the workers
(``workers``), what to dispatch (``workload``), which faults to inject when (``faults``) and what
verdicts to expect (``expect``). Every key is documented in README.md ("Scenario reference").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from celery_chaos.core.checker import DEFAULT_REDELIVERY_THRESHOLD, VERDICTS
from celery_chaos.core.reachability import check_fault_refs, check_reachable
from celery_chaos.core.workflows import check_one_form, leaves, needs_results
from celery_chaos.core.yaml_input import InputError, read_yaml

FaultKind = Literal[
    "kill_child",
    "kill_worker",
    "oom",
    "terminate",
    "quit",
    "pause",
    "resume",
    "restart_broker",
    "start_worker",
    "restart_worker",
    "partition",
    "heal",
    "close_connection",
    "drop_connections",
    "latency",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

# Upper bounds (README, "Limits"): far above any real scenario, low enough that a typo (an extra
# zero, seconds written as milliseconds) is refused instead of dispatched or waited for.
MAX_SECONDS = 86_400.0  # timeouts, offsets, delays: one day
MAX_TASKS = 100_000  # dispatched tasks in one scenario
MAX_WORKERS = 64  # workers alive at once, counting start_worker/restart_worker faults
MAX_CONCURRENCY = 256  # pool size of one worker
MAX_FAULTS = 1_000
MAX_MEMORY = 1024**4  # 1 TiB

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Count = Annotated[int, Field(strict=True, ge=0)]


class ScenarioError(InputError):
    """A scenario file is malformed; the message names the file, the field and the reason."""


def parse_size(value: str | int) -> int:
    """Parse ``256M``/``1G``/``512Mi``/bytes into bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a memory size: {value!r} (use e.g. 256M, 1G)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "")[:1].lower()])


def _bounded_size(value: str | int | None) -> str | int | None:
    if value is not None and not 0 < parse_size(value) <= MAX_MEMORY:
        raise ValueError(f"{value!r}: a memory size must be above 0 and at most 1T")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Range(Strict):
    min: Count | None = None
    max: Count | None = None

    @model_validator(mode="after")
    def _satisfiable(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}: no count can meet both")
        return self


# What an ``expect_when`` entry may depend on: the broker kind, and the version of a library the
# workers run (a PEP 440 specifier such as ``<5.4``), because behaviour under worker death
# legitimately changes between brokers and releases.
CONDITION_KEYS = ("broker", "celery", "kombu", "billiard", "redis-py")


class ExpectWhen(Strict):
    """Expectations that apply instead of the base ``expect`` entries they name, when every
    condition holds; ``why`` names the release note, upstream issue or broker behaviour."""

    when: dict[str, str] = Field(min_length=1)
    expect: dict[str, Count | Range] = Field(min_length=1)
    why: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in (data.get("when") or {}).items():
                _check_condition(key, value)
            for verdict, rule in (data.get("expect") or {}).items():
                _check_expectation(verdict, rule)
        return data


def _check_condition(key: Any, value: Any) -> None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if key not in CONDITION_KEYS:
        raise ValueError(f"when: unknown condition {key!r}; expected one of {CONDITION_KEYS}")
    if key == "broker":
        return
    try:
        SpecifierSet(str(value))
    except InvalidSpecifier:
        raise ValueError(
            f"when.{key}: {value!r}: expected a version specifier such as '<5.4'"
        ) from None


class BrokerSpec(Strict):
    kind: Literal["redis", "rabbitmq"] = "redis"
    persistence: Literal["none", "aof"] = "none"
    image: str | None = None
    # RabbitMQ only: the node's consumer_timeout (seconds; RabbitMQ's default is 30 minutes),
    # checked every second instead of every minute so a scenario can reach it.
    consumer_timeout: Annotated[float, Field(gt=0, le=MAX_SECONDS)] | None = None

    @model_validator(mode="after")
    def _rabbitmq_options(self) -> BrokerSpec:
        if self.consumer_timeout is not None and self.kind != "rabbitmq":
            raise ValueError("consumer_timeout: a RabbitMQ setting; set kind: rabbitmq")
        return self


class WorkersSpec(Strict):
    count: int = Field(default=1, ge=0, le=MAX_WORKERS)
    concurrency: int = Field(default=2, ge=1, le=MAX_CONCURRENCY)
    pool: Literal["prefork", "solo", "threads", "gevent", "eventlet"] = "prefork"
    app: str = Field(default="celery_chaos.sample_tasks.app", min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    memory_limit: str | int | None = None
    image: str | None = None

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | int | None) -> str | int | None:
        return _bounded_size(value)


class TaskOptions(Strict):
    countdown: Seconds | None = None
    eta: Seconds | None = Field(default=None, description="seconds after dispatch")
    expires: Seconds | None = None
    time_limit: Seconds | None = None
    soft_time_limit: Seconds | None = None
    priority: int | None = Field(default=None, ge=0, le=255)
    queue: str | None = None


class WorkloadItem(Strict):
    task: str | None = Field(default=None, min_length=1)
    count: int = Field(default=1, ge=1, le=MAX_TASKS)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    options: TaskOptions = Field(default_factory=TaskOptions)
    at: Seconds = Field(default=0.0, description="dispatch offset, seconds after start")
    chain: list[CanvasNode] | None = Field(default=None, min_length=1)
    group: list[CanvasNode] | None = Field(default=None, min_length=1)
    chord: Chord | None = None
    revoke: Revoke | None = None

    @model_validator(mode="after")
    def _one_form(self) -> WorkloadItem:
        check_one_form(self)
        if self.task is None and (self.args or self.kwargs):
            raise ValueError("args/kwargs go on the members of a chain, group or chord")
        if self.task is None and self.revoke is not None:
            raise ValueError("revoke: only a task item can be revoked (not a workflow)")
        return self

    @property
    def members(self) -> int:
        """Tasks one copy of this item dispatches: 1, or every task of its workflow."""
        return 1 if self.task is not None else len(leaves(self))


class CanvasNode(Strict):
    """One node of a workflow: a task (with its own args, kwargs, options) or a nested chain,
    group or chord, exactly as Celery's canvas nests them."""

    task: str | None = Field(default=None, min_length=1)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    options: TaskOptions = Field(default_factory=TaskOptions)
    immutable: bool = Field(default=False, description="si(): ignore the previous result")
    chain: list[CanvasNode] | None = Field(default=None, min_length=1)
    group: list[CanvasNode] | None = Field(default=None, min_length=1)
    chord: Chord | None = None

    @model_validator(mode="after")
    def _one_form(self) -> CanvasNode:
        check_one_form(self)
        return self


class Chord(Strict):
    """A group (``header``) whose results go to one callback (``body``) once all succeeded."""

    header: list[CanvasNode] = Field(min_length=1)
    body: CanvasNode


class Revoke(Strict):
    """Revoke this item's task (``app.control.revoke``) at an offset or after a fault fired."""

    at: Seconds | None = Field(default=None, description="seconds after the run began")
    after_fault: int | None = Field(default=None, ge=0)
    delay: Seconds = 0.0
    terminate: bool = False

    @model_validator(mode="after")
    def _one_trigger(self) -> Revoke:
        if (self.at is None) == (self.after_fault is None):
            raise ValueError("give exactly one of at, after_fault")
        return self


class ResultsSpec(Strict):
    """Where the result backend lives: a database of the broker's Redis (faults hit it too) or
    of the ledger's Redis (never faulted)."""

    server: Literal["broker", "ledger"] = "ledger"
    db: int = Field(default=1, ge=1, le=15)


class RandomWindow(Strict):
    min: Seconds
    max: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> RandomWindow:
        if self.max < self.min:
            raise ValueError("random.max must be >= random.min")
        return self


class Trigger(Strict):
    task: int | None = Field(default=None, ge=0)
    checkpoint: str | None = None
    attempt: int = Field(default=1, ge=1, le=1000)
    at: Seconds | None = None
    after_fault: int | None = Field(default=None, ge=0)
    delay: Seconds = 0.0
    random: RandomWindow | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        kinds = [
            name
            for name, present in (
                ("checkpoint", self.checkpoint is not None),
                ("at", self.at is not None),
                ("after_fault", self.after_fault is not None),
                ("random", self.random is not None),
            )
            if present
        ]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of checkpoint (with task), at, after_fault, random;"
                f" got {kinds or 'none'}"
            )
        if self.checkpoint is not None and self.task is None:
            raise ValueError("a checkpoint trigger needs task: N (index into the workload)")
        return self


class Target(Strict):
    task: int | None = Field(default=None, ge=0)
    worker: int | None = Field(default=None, ge=0)


class Fault(Strict):
    kind: FaultKind
    when: Trigger
    target: Target = Field(default_factory=Target)
    headroom: str | int = "48M"
    wait: float = Field(default=30.0, gt=0, le=MAX_SECONDS)
    duration: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    latency: float = Field(default=0.2, gt=0, le=60.0, description="seconds, for kind latency")
    wait_ready: bool = Field(default=True, description="start_worker: block until it is ready")

    @field_validator("headroom")
    @classmethod
    def _size(cls, value: str | int) -> str | int:
        _bounded_size(value)
        return value

    def target_task(self) -> int | None:
        """The workload index this fault aims at: explicit target, else the trigger's task."""
        return self.target.task if self.target.task is not None else self.when.task


# The fault kinds a storm may draw: each one is complete on its own (a partition or a latency
# ends after its ``duration``), so no drawn fault waits for another that may never come.
StormKind = Literal[
    "kill_child",
    "kill_worker",
    "restart_worker",
    "terminate",
    "quit",
    "restart_broker",
    "partition",
    "drop_connections",
    "latency",
]


class StormFault(Strict):
    """One kind of the storm's mix: it recurs every ``every.min``-``every.max`` seconds."""

    kind: StormKind
    every: RandomWindow
    duration: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    latency: float = Field(default=0.2, gt=0, le=60.0)

    @model_validator(mode="after")
    def _bounded(self) -> StormFault:
        if self.every.min <= 0:
            raise ValueError("every.min must be above 0 (a fault kind cannot recur at once)")
        if self.kind in ("partition", "latency") and self.duration is None:
            raise ValueError(f"a storm's {self.kind} needs duration (seconds until it ends)")
        return self


class StormSpec(Strict):
    """A long randomized run instead of a fixed schedule: ``tasks`` tasks (drawn from the
    ``workload`` items, weighted by their ``count``) dispatched over ``duration`` seconds, and the
    ``faults`` mix, all drawn from the run's seed (the same seed replays the same storm).
    ``replace_after``: a supervisor starts a replacement this many seconds after each worker
    death (null: no replacement)."""

    duration: float = Field(gt=0, le=MAX_SECONDS)
    tasks: int = Field(ge=1, le=MAX_TASKS)
    faults: list[StormFault] = Field(min_length=1, max_length=50)
    replace_after: Seconds | None = 1.0

    def kinds(self) -> list[str]:
        return [fault.kind for fault in self.faults]


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
    results: ResultsSpec | None = None
    # Timing-sensitive under load: ``run --jobs N`` runs it alone, before the parallel batch.
    exclusive: bool = False
    storm: StormSpec | None = None

    @model_validator(mode="after")
    def _workflow_refs(self) -> Scenario:
        for i, item in enumerate(self.workload):
            if self.results is None and needs_results(item):
                raise ValueError(
                    f"workload[{i}].chord: a chord needs a result backend;"
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
                _check_expectation(verdict, rule)
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
        return self

    @property
    def task_count(self) -> int:
        return sum(item.count * item.members for item in self.workload)

    @property
    def workers_in_all(self) -> int:
        """Workers that will have existed by the end: the initial ones plus one per
        ``start_worker``/``restart_worker`` fault (worker indexes count up from 0)."""
        started = sum(1 for f in self.faults if f.kind in ("start_worker", "restart_worker"))
        return self.workers.count + started


def _check_expectation(verdict: Any, rule: Any) -> None:
    if verdict not in VERDICTS:
        raise ValueError(
            f"expect: unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}"
        )
    if isinstance(rule, dict):
        try:
            Range.model_validate(rule)
        except ValidationError as error:
            joint = "." if error.errors()[0]["loc"] else ": "
            raise ValueError(f"expect.{verdict}{joint}{first_error(error)}") from None
    elif isinstance(rule, bool) or not isinstance(rule, int):
        raise ValueError(
            f"expect.{verdict}: {rule!r}: expected a count (e.g. 0) or a range {{min: 1, max: 3}}"
        )
    elif rule < 0:
        raise ValueError(f"expect.{verdict}: {rule}: a count cannot be negative")


def _field_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _number(value: Any) -> Any:
    """``86400.0`` as ``86400``: bounds and inputs read as the user wrote them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def first_error(error: ValidationError) -> str:
    """The first validation error as ``field.path[0]: what was expected`` (cross-field checks,
    which have no location, name their own field path in the message)."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "less_than_equal":
        value, bound = _number(first["input"]), _number(first["ctx"]["le"])
        message = f"{value!r} is above the upper bound {bound} (README: Limits)"
    return f"{_field_path(first['loc'])}: {message}" if first["loc"] else message


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
    broker = BrokerSpec.model_validate(scenario.broker.model_dump() | {"kind": kind})
    return scenario.model_copy(update={"broker": broker})
