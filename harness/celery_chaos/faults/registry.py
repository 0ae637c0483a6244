"""The registry of fault kinds: every kind the harness knows, in one place, and the questions
the rest of the harness asks of them. A new fault kind is one module and one line here.

The order is the scenario schema's (``celery-chaos schema``, ``celery-chaos list``, the docs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults import (
    bandwidth,
    close_connection,
    drop_connections,
    evict,
    failover,
    kill_child,
    kill_worker,
    latency,
    oom,
    partition,
    partition_one_way,
    pause,
    quit,
    restart_broker,
    restart_worker,
    rolling_deploy,
    scale_down,
    start_worker,
    terminate,
)
from celery_chaos.faults.base import (
    INJECTION_ERROR,
    MISSED,
    Aim,
    FaultKind,
    FaultPrimitives,
    FaultResult,
)

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault

FAULTS: dict[str, FaultKind] = {
    kind.name: kind
    for kind in (
        kill_child.KIND,
        kill_worker.KIND,
        oom.KIND,
        terminate.KIND,
        quit.KIND,
        evict.KIND,
        scale_down.KIND,
        rolling_deploy.KIND,
        pause.PAUSE,
        pause.RESUME,
        restart_broker.KIND,
        failover.KIND,
        start_worker.KIND,
        restart_worker.KIND,
        partition.PARTITION,
        partition.HEAL,
        partition_one_way.KIND,
        close_connection.KIND,
        drop_connections.KIND,
        latency.KIND,
        bandwidth.KIND,
    )
}
KINDS: tuple[str, ...] = tuple(FAULTS)


def supported_by(placement: str) -> frozenset[str]:
    """The fault kinds ``placement`` can carry out."""
    return frozenset(name for name, kind in FAULTS.items() if placement in kind.placements)


def repro_kinds() -> tuple[str, ...]:
    """The kinds ``celery-chaos repro --fault`` accepts, in registry order."""
    return tuple(name for name, kind in FAULTS.items() if kind.repro is not None)


def storm_kinds() -> tuple[str, ...]:
    """The kinds a storm may draw, in registry order."""
    return tuple(name for name, kind in FAULTS.items() if kind.storm is not None)


def proxied(kinds: set[str], placement: str) -> bool:
    """Whether any of ``kinds`` needs the workers behind the broker proxy on ``placement``."""
    return any(placement in FAULTS[name].proxied_on for name in kinds if name in FAULTS)


def undone_by(name: str) -> str | None:
    """The kind that ends ``name``'s effect (pause: resume), if any."""
    return next((k.name for k in FAULTS.values() if k.undoes == name), None)


def carry_out(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    """Carry ``fault`` out on ``aim``; nothing to hit is ``missed``, a primitive that raised is
    an ``injection_error`` (both recorded, never hidden)."""
    kind = FAULTS.get(fault.kind)
    if kind is None:
        return FaultResult(MISSED, f"unknown fault kind {fault.kind}")
    if kind.needs_task and aim.attempt is None:
        return FaultResult(MISSED, "no running attempt of the target task")
    if kind.needs_worker and aim.worker is None:
        task = fault.target_task() if fault.target.worker is None else None
        if task is not None:  # the nemesis never aims it at another worker instead
            return FaultResult(MISSED, f"task {task} is not running: no worker to target")
        return FaultResult(MISSED, "no worker to target")
    try:
        return kind.apply(placement, fault, aim, release)
    except Exception as error:
        return FaultResult(INJECTION_ERROR, f"{type(error).__name__}: {error}")
