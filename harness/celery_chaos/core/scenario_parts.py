"""The sections of a scenario file: broker, workers, workload (tasks, workflows, revokes),
results, faults with their triggers and targets, and storms. The whole file is
:class:`celery_chaos.core.scenario.Scenario`; each section's model is imported from here.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any, Literal

from celery_chaos.core.scenario_base import (
    MAX_CONCURRENCY,
    MAX_TASKS,
    MAX_WORKERS,
    FaultKindName,
    Seconds,
    Strict,
)
from celery_chaos.core.scenario_topology import BrokerTopology, TopologyFaultOptions
from celery_chaos.core.workflows import check_one_form, leaves
from celery_chaos.faults.params import (
    MAX_SECONDS,
    DeployFields,
    Duration,
    Headroom,
    Latency,
    Rate,
    Wait,
    bounded_size,
)
from celery_chaos.faults.registry import FAULTS, storm_kinds
from celery_chaos.pydantic_compat import Field, field_validator, model_validator


class QueueDeclaration(Strict):
    """A queue the harness declares on a RabbitMQ broker (e.g. a dead-letter queue that no
    worker consumes: Celery declares only the queues it consumes or publishes to)."""

    durable: bool = True
    arguments: dict[str, str | int | float | bool] = Field(default_factory=dict)


class BrokerSpec(BrokerTopology):
    kind: Literal["redis", "rabbitmq"] = "redis"
    persistence: Literal["none", "aof"] = "none"
    image: str | None = None
    # RabbitMQ only: the node's consumer_timeout (seconds; RabbitMQ's default is 30 minutes),
    # checked every second instead of every minute so a scenario can reach it.
    consumer_timeout: Annotated[float, Field(gt=0, le=MAX_SECONDS)] | None = None
    # RabbitMQ only: queues declared once the broker is up (and again after restart_broker).
    declare_queues: dict[Annotated[str, Field(min_length=1)], QueueDeclaration] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _rabbitmq_options(self) -> BrokerSpec:
        for option in ("consumer_timeout", "declare_queues"):
            if getattr(self, option) and self.kind != "rabbitmq":
                raise ValueError(f"{option}: a RabbitMQ setting; set kind: rabbitmq")
        return self


# Worker pools a scenario (and repro) may ask for; gevent and eventlet are extras to install.
POOLS = ("prefork", "solo", "threads", "gevent", "eventlet")
Pool = Literal[POOLS]  # type: ignore[valid-type]


# ``workers.args`` (docs/worker-command.md): the options the harness owns, refused with why...
_OWN = "the harness names each worker (wN@chaos-<run>); the history tells workers apart by it"
REFUSED_WORKER_OPTIONS = {
    "-n": _OWN,
    "--hostname": _OWN,
    "-D": "a detached worker leaves the process the harness watches",
    "--detach": "a detached worker leaves the process the harness watches",
    "-f": "the harness reads the worker's output to say why it exited",
    "--logfile": "the harness reads the worker's output to say why it exited",
    "-b": "the harness starts the broker the workers use",
    "--broker": "the harness starts the broker the workers use",
    "--result-backend": "a scenario chooses the result backend with results:",
}
# ...and the ones that set a field of the workers section (the pool matters to the faults).
ADOPTED_WORKER_OPTIONS = {
    "-A": "app",
    "--app": "app",
    "-P": "pool",
    "--pool": "pool",
    "-c": "concurrency",
    "--concurrency": "concurrency",
}
_WITH_VALUE = [*ADOPTED_WORKER_OPTIONS, "-n", "--hostname", "-f", "--logfile", "-b", "--broker"]
# ``celery worker``'s short options that take a value (the rest of a cluster is that value) and
# the ones a cluster may not hide (``-Ec 4`` is -E -c 4: the harness would not see the -c).
_SHORT_WITH_VALUE = set("nSlOcPQXIsfAb")
_NOT_IN_A_CLUSTER = set("APcnDfb")


def _refuse_cluster(token: str) -> None:
    """Refuse a short-option cluster (``-Ec``, ``-DE``) hiding an option the harness reads or
    refuses; a value glued to an option (``-linfo``, ``-Ofair``) ends the cluster."""
    if not token.startswith("-") or token.startswith("--") or len(token) < 3:
        return
    for char in token[1:]:
        if char in _NOT_IN_A_CLUSTER:
            raise ValueError(
                f"{token}: a cluster of short options with -{char}: give -{char} alone"
            )
        if char in _SHORT_WITH_VALUE:
            return


def _option(token: str) -> tuple[str, str | None] | None:
    """``token`` as (option, attached value) if it is one the harness looks at: ``-Pthreads``,
    ``--pool=threads``, ``--pool`` (value in the next token)."""
    for name in [*REFUSED_WORKER_OPTIONS, *ADOPTED_WORKER_OPTIONS]:
        if token == name:
            return name, None
        if name.startswith("--") and token.startswith(name + "="):
            return name, token[len(name) + 1 :]
        if len(name) == 2 and name in _WITH_VALUE and token.startswith(name) and len(token) > 2:
            return name, token[2:]
    return None


def _worker_options(tokens: list[str]) -> list[str]:
    """The tokens after ``worker`` in a whole command line (``celery -A proj worker -c 4``); a
    list of options alone is returned as it is. Before ``worker`` only ``-A`` may stand."""
    if tokens[:1] == ["celery"] or tokens[:1] and tokens[0].endswith("/celery"):
        tokens = tokens[1:]
    elif tokens[1:3] == ["-m", "celery"]:
        tokens = tokens[3:]
    elif tokens[:1] != ["worker"]:
        return tokens
    if "worker" not in tokens:
        raise ValueError("a celery command line without the worker sub-command")
    at, index = tokens.index("worker"), 0
    while index < at:
        name, value = _option(tokens[index]) or (tokens[index], "")
        if name not in ("-A", "--app"):
            raise ValueError(f"{name!r} before 'worker': only -A may come first")
        index += 1 if value is not None else 2
    return [*tokens[:at], *tokens[at + 1 :]]


def split_worker_args(raw: Any) -> tuple[dict[str, str], list[str]]:
    """A team's worker command line (a list of strings, or one string split like a shell) as
    the fields it sets (``app``, ``pool``, ``concurrency`` from -A/-P/-c) and the other options,
    in order. Options that would break the run are refused (ValueError)."""
    if isinstance(raw, str):
        try:
            raw = shlex.split(raw)
        except ValueError as error:
            raise ValueError(f"{raw!r}: cannot split like a shell ({error})") from None
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ValueError("expected a list of strings or one command-line string")
    tokens, adopted, rest = _worker_options(list(raw)), {}, []
    while tokens:
        token = tokens.pop(0)
        found = _option(token)
        if found is None:
            _refuse_cluster(token)
            rest.append(token)
            continue
        name, value = found
        if name in REFUSED_WORKER_OPTIONS:
            raise ValueError(f"{token}: {REFUSED_WORKER_OPTIONS[name]}")
        if value is None:
            if not tokens:
                raise ValueError(f"{name} needs a value")
            value = tokens.pop(0)
        field = ADOPTED_WORKER_OPTIONS[name]
        if adopted.get(field, value) != value:
            raise ValueError(f"{name} given twice ({adopted[field]}, {value})")
        adopted[field] = value
    return adopted, rest


class WorkersSpec(Strict):
    count: int = Field(default=1, ge=0, le=MAX_WORKERS)
    concurrency: int = Field(default=2, ge=1, le=MAX_CONCURRENCY)
    pool: Pool = "prefork"
    app: str = Field(default="celery_chaos.sample_tasks.app", min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    memory_limit: str | int | None = None
    image: str | None = None
    # The team's own ``celery worker`` options, after the harness's, so they win (see
    # docs/worker-command.md); -A/-P/-c in them set app/pool/concurrency.
    args: list[str] = Field(default_factory=list)
    # None: celery exec'd directly; shell: under a shell that forwards no signal; exec: sh -c exec
    entrypoint: Literal["shell", "exec"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _team_args(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("args") is None:
            return data
        try:
            adopted, rest = split_worker_args(data["args"])
        except ValueError:
            return data  # reported by _args below, under workers.args
        for field, value in adopted.items():
            given = data.get(field)
            if given is not None and str(given) != value:
                raise ValueError(f"args: {field} {value}, but {field}: {given}: give it once")
        return {**data, **adopted, "args": rest}

    @field_validator("args", mode="before")
    @classmethod
    def _args(cls, value: Any) -> Any:
        return split_worker_args(value)[1]  # already split above: only a refusal raises here

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | int | None) -> str | int | None:
        return bounded_size(value)


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


class Fault(TopologyFaultOptions, DeployFields):
    """One fault: its kind, when it fires, what it aims at, and the options of its kind (each
    kind's parameter model, in celery_chaos.faults, says which options it reads)."""

    kind: FaultKindName
    when: Trigger
    target: Target = Field(default_factory=Target)
    headroom: Headroom = "48M"
    wait: Wait = 30.0
    duration: Duration | None = None
    latency: Latency = Field(default=0.2, description="seconds, for kind latency")
    rate: Rate = Field(default="16k", description="bytes per second, for kind bandwidth")
    wait_ready: bool = Field(default=True, description="start_worker: block until it is ready")

    @model_validator(mode="after")
    def _options_of_its_kind(self) -> Fault:
        """Refuse an option the kind does not read (it would silently do nothing); its default
        value is let through, so a dumped scenario (every field written out) loads again."""
        reads = FAULTS[self.kind].params.model_fields
        for key in sorted(self.model_fields_set - {"kind", "when", "target"}):
            if key not in reads and getattr(self, key) != Fault.model_fields[key].default:
                takes = f"it takes {', '.join(reads)}" if reads else "it takes none"
                raise ValueError(f"{key}: not an option of kind {self.kind} ({takes})")
        return self

    def target_task(self) -> int | None:
        """The workload index this fault aims at: explicit target, else the trigger's task."""
        return self.target.task if self.target.task is not None else self.when.task


# The fault kinds a storm may draw (those with a storm rule): each one is complete on its own
# (a partition or a latency ends after its ``duration``), so no drawn fault waits for another.
StormKind = Literal[storm_kinds()]  # type: ignore[valid-type]


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
        rule = FAULTS[self.kind].storm
        if rule is not None and rule.needs_duration and self.duration is None:
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
