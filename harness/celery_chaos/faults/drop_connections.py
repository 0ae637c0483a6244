"""``drop_connections``: reset every open broker connection of the worker once (a failover,
a load balancer's reset), through the harness's proxy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    PLACEMENTS,
    Aim,
    FaultKind,
    FaultPrimitives,
    FaultResult,
    Repro,
    StormRule,
)

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    return FaultResult(INJECTED, placement.drop_connections(aim.worker))


KIND = FaultKind(
    "drop_connections",
    "reset every open broker connection of the worker once (failover, load balancer)",
    apply,
    cuts_connection=True,
    proxied_on=PLACEMENTS,
    storm=StormRule("worker"),
    repro=Repro(),
    how={
        LOCAL: (
            "the worker's proxy resets every open broker connection once (RST both ways), as a "
            "broker failover or a load balancer does; the worker may reconnect at once"
        ),
        DOCKER: "the same, through the same proxy (below)",
    },
)
