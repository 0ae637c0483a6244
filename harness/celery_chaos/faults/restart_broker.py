"""``restart_broker``: crash the broker, keep it down ``duration`` s (default 0), start it again."""

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


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    return FaultResult(INJECTED, placement.restart_broker(fault.duration or 0.0))


KIND = FaultKind(
    "restart_broker",
    "crash the broker and start it again",
    apply,
    params=TimedParams,  # duration: how long the broker stays down
    needs_worker=False,
    band=Band("broker down", "band-broker"),
    on_broker=True,
    storm=StormRule("broker"),
    repro=Repro(),
    how={
        LOCAL: (
            "SIGKILL the broker and start it again on the same port, `duration` s later if given "
            "(RabbitMQ: the node, its data directory kept; see below)"
        ),
        DOCKER: (
            "SIGKILL the broker container and start it again, `duration` s later if given (same "
            "port; RabbitMQ: its mnesia kept)"
        ),
    },
)
