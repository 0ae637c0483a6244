"""The fault kinds as one table: what each needs and which backends can carry it out.

Pure data, so validation (core), the backends' ``supported_faults``, ``celery-chaos list``,
repro's ``--fault`` choices and README's fault table all read the same rows; the handlers that
carry a kind out live in :mod:`celery_chaos.run.faults`, keyed by the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

LOCAL, DOCKER = "local", "docker"


@dataclass(frozen=True)
class FaultKindInfo:
    """One row: ``needs_task`` means the fault hits a running attempt (skipped without one);
    ``repro`` means ``celery-chaos repro --fault`` offers it (it hits the task's worker)."""

    kind: str
    summary: str
    needs_task: bool = False
    repro: bool = False
    backends: frozenset[str] = frozenset({LOCAL, DOCKER})


FAULT_TABLE: dict[str, FaultKindInfo] = {
    row.kind: row
    for row in (
        FaultKindInfo(
            "kill_child", "SIGKILL the pool process running the task", needs_task=True, repro=True
        ),
        FaultKindInfo(
            "kill_worker", "SIGKILL the whole worker (main process and children)", repro=True
        ),
        FaultKindInfo("oom", "kernel OOM kill via the memory limit", needs_task=True, repro=True),
        FaultKindInfo("terminate", "SIGTERM to the worker (warm shutdown)", repro=True),
        FaultKindInfo("quit", "SIGQUIT to the worker (cold shutdown)", repro=True),
        FaultKindInfo("pause", "freeze the whole worker"),
        FaultKindInfo("resume", "thaw a paused worker"),
        FaultKindInfo("restart_broker", "crash the broker and start it again", repro=True),
        FaultKindInfo("start_worker", "start one more worker"),
        FaultKindInfo("restart_worker", "SIGKILL the worker, then start a replacement", repro=True),
        FaultKindInfo(
            "partition",
            "the worker's broker connections hang (blackhole; local: proxy; for `duration` s)",
            repro=True,
        ),
        FaultKindInfo("heal", "reconnect a partitioned worker"),
        FaultKindInfo(
            "drop_connections",
            "reset every open broker connection of the worker once (failover, load balancer)",
            repro=True,
        ),
        FaultKindInfo(
            "latency",
            "add `latency` s to the worker's broker traffic, for `duration` s",
            repro=True,
        ),
        FaultKindInfo(
            "bandwidth",
            "limit the worker's broker traffic to `rate` bytes/s each way, for `duration` s",
        ),
        FaultKindInfo(
            "close_connection",
            "RabbitMQ closes the worker's connection (broker side)",
        ),
    )
}


# Kinds carried out on the worker's broker connection (the harness's proxy; docker's partition:
# the engine's network disconnect).
NETWORK_KINDS = frozenset({"partition", "heal", "drop_connections", "latency", "bandwidth"})

# Pools without child processes: every kill of the task's process is a whole-worker kill.
WHOLE_WORKER_POOLS = frozenset({"solo", "threads", "gevent", "eventlet"})


def supported_by(backend: str) -> frozenset[str]:
    """The fault kinds ``backend`` can inject."""
    return frozenset(kind for kind, row in FAULT_TABLE.items() if backend in row.backends)


def repro_kinds() -> tuple[str, ...]:
    """The kinds ``celery-chaos repro --fault`` accepts, in table order."""
    return tuple(kind for kind, row in FAULT_TABLE.items() if row.repro)
