"""How each fault kind is carried out: a table kind -> handler over the backend's primitives.

The nemesis picks the target (a running attempt, a worker) and calls :func:`apply`; the handler
returns what happened and whom to *blame* for a death it causes. The blame travels in the
``fault`` event of the history, where the watcher reads it: the nemesis never talks to the watcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery_chaos.backends.base import Backend, Worker
from celery_chaos.core.fault_kinds import FAULT_TABLE, WHOLE_WORKER_POOLS
from celery_chaos.core.scenario import Fault, parse_size
from celery_chaos.run.watcher import LiveAttempt

INJECTED, SKIPPED, FAILED = "injected", "skipped", "failed"


@dataclass
class Target:
    """What a fault aims at, resolved by the nemesis just before it fires."""

    worker: Worker | None
    attempt: LiveAttempt | None
    on_worker: list[LiveAttempt] = field(default_factory=list)  # attempts running on ``worker``

    def hits(self) -> list[dict[str, Any]]:
        return [{"task_id": a.task_id, "attempt": a.attempt} for a in self.on_worker]

    def attempt_hit(self) -> list[dict[str, Any]]:
        assert self.attempt is not None
        return [{"task_id": self.attempt.task_id, "attempt": self.attempt.attempt}]


@dataclass
class Outcome:
    status: str
    detail: str
    hits: list[dict[str, Any]] = field(default_factory=list)
    blame: str | None = None  # "pid" (the attempt's process) or "worker" (the whole worker)
    cause: str | None = None  # the process_exit reason for a death this fault caused


Apply = Callable[[Backend, Fault, Target, Callable[[], None]], Outcome]


def _kill_child(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    assert target.worker is not None and target.attempt is not None
    pool = backend.scenario.workers.pool
    if pool in WHOLE_WORKER_POOLS:  # the task runs in the worker's own process
        detail = backend.kill_worker(target.worker)
        cause = f"SIGKILL by kill_child fault (pool {pool}: the whole worker)"
        return Outcome(INJECTED, detail, target.hits(), "worker", cause)
    detail = backend.kill_pool_process(target.worker, target.attempt.pid)
    return Outcome(INJECTED, detail, target.attempt_hit(), "pid", "SIGKILL by kill_child fault")


def _kill_worker(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    assert target.worker is not None
    cause = "SIGKILL by kill_worker fault (whole worker)"
    return Outcome(INJECTED, backend.kill_worker(target.worker), target.hits(), "worker", cause)


def _restart_worker(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    assert target.worker is not None
    detail = backend.kill_worker(target.worker)
    started = backend.start_worker()
    cause = "SIGKILL by restart_worker fault"
    return Outcome(INJECTED, f"{detail}; started {started.name}", target.hits(), "worker", cause)


def _oom(backend: Backend, fault: Fault, target: Target, release: Callable[[], None]) -> Outcome:
    assert target.worker is not None and target.attempt is not None
    detail = backend.oom(target.worker, parse_size(fault.headroom), fault.wait, release)
    died = not backend.process_alive(target.worker, target.attempt.pid)
    return Outcome(INJECTED, detail, target.attempt_hit() if died else [])


def _signal(signame: str) -> Apply:
    def handler(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
        assert target.worker is not None
        detail = backend.signal_worker(target.worker, signame)
        return Outcome(INJECTED, detail, [], "worker", f"{signame} by {fault.kind} fault")

    return handler


def _pause(paused: bool) -> Apply:
    def handler(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
        assert target.worker is not None
        return Outcome(INJECTED, backend.pause_worker(target.worker, paused=paused))

    return handler


def _partition(connected: bool) -> Apply:
    def handler(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
        assert target.worker is not None
        duration = None if connected else fault.duration  # a timed partition heals by itself
        return Outcome(INJECTED, backend.partition(target.worker, connected, duration))

    return handler


def _drop_connections(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    assert target.worker is not None
    return Outcome(INJECTED, backend.drop_connections(target.worker))


def _latency(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    assert target.worker is not None
    return Outcome(INJECTED, backend.add_latency(target.worker, fault.latency, fault.duration))


def _bandwidth(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    assert target.worker is not None
    rate = parse_size(fault.rate)
    return Outcome(INJECTED, backend.limit_bandwidth(target.worker, rate, fault.duration))


def _restart_broker(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    return Outcome(INJECTED, backend.restart_broker(fault.duration or 0.0))


def _close_connection(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    assert target.worker is not None
    return Outcome(INJECTED, backend.close_broker_connection(target.worker))


def _start_worker(backend: Backend, fault: Fault, target: Target, release: Any) -> Outcome:
    if not fault.wait_ready:  # a supervisor's restart: the run goes on while it boots
        return Outcome(INJECTED, f"launched {backend.launch_worker().name} (not waited for)")
    return Outcome(INJECTED, f"started {backend.start_worker().name}")


@dataclass(frozen=True)
class Handler:
    apply: Apply
    needs_worker: bool = True


HANDLERS: dict[str, Handler] = {
    "kill_child": Handler(_kill_child),
    "kill_worker": Handler(_kill_worker),
    "oom": Handler(_oom),
    "terminate": Handler(_signal("SIGTERM")),
    "quit": Handler(_signal("SIGQUIT")),
    "pause": Handler(_pause(True)),
    "resume": Handler(_pause(False)),
    "restart_broker": Handler(_restart_broker, needs_worker=False),
    "start_worker": Handler(_start_worker, needs_worker=False),
    "restart_worker": Handler(_restart_worker),
    "partition": Handler(_partition(False)),
    "heal": Handler(_partition(True)),
    "close_connection": Handler(_close_connection),
    "drop_connections": Handler(_drop_connections),
    "latency": Handler(_latency),
    "bandwidth": Handler(_bandwidth),
}
assert set(HANDLERS) == set(FAULT_TABLE), "every fault kind needs exactly one handler"


def apply(backend: Backend, fault: Fault, target: Target, release: Callable[[], None]) -> Outcome:
    """Carry ``fault`` out on ``target``; a missing target is ``skipped``, an injection that
    raised is ``failed`` (both recorded, never hidden)."""
    handler = HANDLERS.get(fault.kind)
    if handler is None:
        return Outcome(SKIPPED, f"unknown fault kind {fault.kind}")
    if FAULT_TABLE[fault.kind].needs_task and target.attempt is None:
        return Outcome(SKIPPED, "no running attempt of the target task")
    if handler.needs_worker and target.worker is None:
        task = fault.target_task() if fault.target.worker is None else None
        if task is not None:  # the nemesis never aims it at another worker instead
            return Outcome(SKIPPED, f"task {task} is not running: no worker to target")
        return Outcome(SKIPPED, "no worker to target")
    try:
        return handler.apply(backend, fault, target, release)
    except Exception as error:
        return Outcome(FAILED, f"{type(error).__name__}: {error}")
