"""``partition``: the worker's broker connections hang (a blackhole: local through the proxy,
docker by disconnecting its network), for ``duration`` s or until a ``heal`` reconnects it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    Aim,
    Band,
    FaultKind,
    FaultPrimitives,
    FaultResult,
    Repro,
    StormRule,
)
from celery_chaos.faults.params import TimedParams

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


def partition(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    return FaultResult(INJECTED, placement.partition(aim.worker, False, fault.duration))


def heal(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    return FaultResult(INJECTED, placement.partition(aim.worker, True, None))


PARTITION = FaultKind(
    "partition",
    "the worker's broker connections hang (blackhole; local: proxy; for `duration` s)",
    partition,
    params=TimedParams,
    band=Band("partitioned", "band-partition", until_undone=True),
    cuts_connection=True,
    proxied_on=frozenset({LOCAL}),  # docker disconnects the container's network instead
    storm=StormRule("worker", needs_duration=True),
    repro=Repro(timed=True),
    how={
        LOCAL: (
            "the worker's own TCP proxy blackholes its broker connections (they hang; held bytes "
            "flow on after `heal`, or after `duration` s)"
        ),
        DOCKER: (
            "disconnect the worker from the broker network (reconnected after `duration` s when "
            "given); a worker behind the proxy (below) has its proxy blackholed too"
        ),
    },
)
HEAL = FaultKind(
    "heal",
    "reconnect a partitioned worker",
    heal,
    undoes="partition",
    proxied_on=frozenset({LOCAL}),
    how={
        LOCAL: "the worker's proxy lets its broker connections flow again (held bytes flow on)",
        DOCKER: "reconnect the worker to the broker network (and unblock its proxy, if it has one)",
    },
)
