"""``failover``: the Redis master of a Sentinel topology goes away and the Sentinels promote the
replica. ``how: kill`` SIGKILLs the master (it stays down: a lost host); ``how: sentinel`` asks
the Sentinels for ``SENTINEL FAILOVER`` with the master alive (a planned switch: it is demoted
and its clients are disconnected). The workers must find the new master through the Sentinels;
celery#10096 (fixed in Celery 5.6.3 by #10151) is a worker that stops consuming after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    Aim,
    Band,
    FaultKind,
    FaultPrimitives,
    FaultResult,
)
from celery_chaos.faults.params import Params

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


class FailoverParams(Params):
    how: Literal["kill", "sentinel"] = "kill"


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    return FaultResult(INJECTED, placement.failover(fault.how))


KIND = FaultKind(
    "failover",
    "the Sentinel topology's master is SIGKILLed (`how: kill`) or demoted (`how: sentinel`)",
    apply,
    params=FailoverParams,
    needs_worker=False,
    band=Band("failover", "band-broker"),
    on_broker=True,
    needs_topology="sentinel",
    placements=frozenset({LOCAL, DOCKER}),
    how={
        LOCAL: (
            "`kill`: SIGKILL the master's redis-server (it stays down; the Sentinels promote the "
            "replica after 1 s of silence); `sentinel`: `SENTINEL FAILOVER` to a Sentinel"
        ),
        DOCKER: (
            "`kill`: docker kill (SIGKILL) the master's container (it stays down; the Sentinels, "
            "containers too, promote the replica after 1 s of silence); `sentinel`: `SENTINEL "
            "FAILOVER` to a Sentinel"
        ),
    },
)
