"""What a fault kind is: one :class:`FaultKind` object says everything the harness needs to
know about it (its options, its aim, whom a death it causes is blamed on, whether it lasts, where
it can run, its storm rule, whether ``repro`` offers it) and carries its handler.

Handlers only call :class:`FaultPrimitives` methods on the placement object the nemesis passes
in; nothing here imports a broker, Celery, a container library or the core at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from celery_chaos.faults.params import NoParams, Params

if TYPE_CHECKING:
    from celery_chaos.core.scenario import Scenario
    from celery_chaos.core.scenario_parts import Fault

LOCAL, DOCKER = "local", "docker"
PLACEMENTS = frozenset({LOCAL, DOCKER})
# Pools without child processes: every kill of the task's process is a whole-worker kill.
WHOLE_WORKER_POOLS = frozenset({"solo", "threads", "gevent", "eventlet"})

# A fault event's ``status``: carried out; nothing to hit (no running attempt, no worker, a
# trigger that never came); the primitive raised.
INJECTED, MISSED, INJECTION_ERROR = "injected", "missed", "injection_error"

# The placement's own worker handle (``placements.base.Worker``): handlers only pass it back.
WorkerRef = Any


class RunningAttempt(Protocol):
    """An attempt running now, as the watcher sees it."""

    @property
    def task_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def worker(self) -> str | None: ...
    @property
    def pid(self) -> int: ...


class FaultPrimitives(Protocol):
    """The placement-side primitives handlers call: the Placement's method names."""

    scenario: Scenario
    workers: list[WorkerRef]  # every worker started so far, exited ones included

    def kill_pool_process(self, worker: WorkerRef, pid: int) -> str: ...
    def kill_worker(self, worker: WorkerRef) -> str: ...
    def signal_worker(self, worker: WorkerRef, signame: str) -> str: ...
    def pause_worker(self, worker: WorkerRef, paused: bool) -> str: ...
    def restart_broker(self, down_for: float = 0.0) -> str: ...
    def oom(
        self, worker: WorkerRef, headroom: int, wait: float, release: Callable[[], None]
    ) -> str: ...
    def partition(
        self, worker: WorkerRef, connected: bool, duration: float | None = None
    ) -> str: ...
    def drop_connections(self, worker: WorkerRef) -> str: ...
    def add_latency(self, worker: WorkerRef, seconds: float, duration: float | None) -> str: ...
    def limit_bandwidth(self, worker: WorkerRef, rate: int, duration: float | None) -> str: ...
    def close_broker_connection(self, worker: WorkerRef) -> str: ...
    def failover(self, how: str) -> str: ...
    def hold_one_way(self, worker: WorkerRef, direction: str, duration: float | None) -> str: ...
    def start_worker(self) -> WorkerRef: ...
    def launch_worker(self) -> WorkerRef: ...
    def process_alive(self, worker: WorkerRef | None, pid: int) -> bool: ...
    def worker_exit_reason(self, worker: WorkerRef | None) -> str | None: ...
    def worker_ready(self, worker: WorkerRef) -> bool: ...
    def deploy_version(self, app: str | None, env: dict[str, str] | None) -> None: ...


@dataclass
class Aim:
    """What a fault aims at, resolved by the nemesis just before it fires."""

    worker: WorkerRef | None
    attempt: RunningAttempt | None
    on_worker: Sequence[RunningAttempt] = field(default_factory=list)  # attempts on ``worker``
    running: Sequence[RunningAttempt] = field(default_factory=list)  # on every worker

    def hits(self) -> list[dict[str, Any]]:
        return [{"task_id": a.task_id, "attempt": a.attempt} for a in self.on_worker]

    def attempt_hit(self) -> list[dict[str, Any]]:
        assert self.attempt is not None
        return [{"task_id": self.attempt.task_id, "attempt": self.attempt.attempt}]


@dataclass
class FaultResult:
    """What carrying a fault out did; it becomes the ``fault`` event of the history."""

    status: str
    detail: str
    hits: list[dict[str, Any]] = field(default_factory=list)
    blame: str | None = None  # "pid" (the attempt's process) or "worker" (the whole worker)
    cause: str | None = None  # the process_exit reason for a death this fault caused
    # Steps the nemesis carries out later, each recorded as one more event of this fault (an
    # evict's SIGKILL once its grace expired), so no handler blocks the loop for a grace period.
    then: list[FollowUp] = field(default_factory=list)
    worker: WorkerRef | None = None  # the worker it hit, if the handler chose it (scale_down)


@dataclass
class FollowUp:
    """One later step of a fault on ``worker``: ``apply`` runs ``delay`` s after the fault, with
    the aim at that worker then, unless the worker's exit is in the history first (its
    ``worker_exit`` event is then the moment it ended on its own). ``apply`` returning None:
    nothing was done (nothing is recorded); returning a FollowUp: not yet, that step instead
    (a rolling deploy polling for its new workers' readiness without blocking the loop)."""

    delay: float
    worker: WorkerRef
    stage: str  # the ``stage`` of the event it records ("sigkill", "sigterm")
    apply: Callable[[Aim], FaultResult | FollowUp | None]


Handler = Callable[["FaultPrimitives", "Fault", Aim, Callable[[], None]], FaultResult]


def signal_handler(signame: str) -> Handler:
    """A handler that sends ``signame`` to the aimed worker's main process; the worker's own
    response to it (warm or cold shutdown) is what the run measures, so its death is blamed on
    the whole worker."""

    def apply(
        placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
    ) -> FaultResult:
        assert aim.worker is not None
        detail = placement.signal_worker(aim.worker, signame)
        return FaultResult(INJECTED, detail, [], "worker", f"{signame} by {fault.kind} fault")

    return apply


# Whom a death the kind causes is blamed on: the attempt's process, the whole worker, or the
# worker's whole memory cgroup (the kernel chooses the process: maybe the main one).
Blame = Literal["pid", "worker", "cgroup"]


@dataclass(frozen=True)
class Band:
    """How the timeline draws a kind that lasts: ``label`` over ``css``; ``until_undone``: from
    the fault to the kind that undoes it (or its ``duration``, or the run's end), else over the
    time it took to carry out (a broker down, a memory limit lowered)."""

    label: str
    css: str
    until_undone: bool = False


# How a storm aims a kind: the broker; a random running attempt; a random live worker; a live
# worker killed and replaced at once; a live worker killed, a supervisor's replacement later.
StormAim = Literal["broker", "attempt", "worker", "replace", "death"]


@dataclass(frozen=True)
class StormRule:
    """Whether and how a storm draws the kind (each drawn fault must end on its own)."""

    aim: StormAim
    needs_duration: bool = False  # a storm's fault of this kind must say when it ends
    poolless_as: str | None = None  # the kind drawn instead on WHOLE_WORKER_POOLS


@dataclass(frozen=True)
class Repro:
    """``celery-chaos repro --fault`` offers the kind; ``replacement``: a worker is started
    after it (the hit worker is gone); ``timed``: it gets the repro's ``--duration``."""

    replacement: bool = False
    timed: bool = False


@dataclass(frozen=True)
class FaultKind:
    """Everything about one fault kind; the registry collects them."""

    name: str
    summary: str
    apply: Handler
    params: type[Params] = NoParams
    needs_task: bool = False  # hits a running attempt (missed without one)
    needs_worker: bool = True  # aims at a worker (missed without one)
    blame: Blame | None = None  # a death it causes is the harness's doing, blamed on this
    ends_worker: bool = False  # the worker is certainly gone once it is recorded (SIGKILL)
    starts_worker: bool = False  # a new worker index exists once it fired
    undoes: str | None = None  # the kind whose effect this one ends (resume: pause)
    band: Band | None = None
    on_broker: bool = False  # aims at the broker itself
    cuts_connection: bool = False  # the worker loses its broker connection while a task runs
    memory_cgroup: bool = False  # needs the workers in a memory cgroup
    # The broker capability it needs (a flag of celery_chaos.brokers.base.Broker; None: any
    # broker): a placement refuses the scenario up front on a broker without it.
    needs_broker: str | None = None
    needs_topology: str | None = None  # the ``broker.topology`` it needs (failover: sentinel)
    placements: frozenset[str] = PLACEMENTS
    # How each placement carries it out, in a sentence (the docs' table is generated from it).
    how: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    proxied_on: frozenset[str] = frozenset()  # placements where it needs the broker proxy
    destructive: bool = True  # leaves a shared environment changed for the next test
    storm: StormRule | None = None
    repro: Repro | None = None

    @property
    def kills_task_process(self) -> bool:
        """It aims at the running attempt's process (the whole worker on a pool without
        children)."""
        return self.blame in ("pid", "cgroup")
