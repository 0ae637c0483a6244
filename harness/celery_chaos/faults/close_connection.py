"""``close_connection``: RabbitMQ closes the worker's AMQP connections (broker side)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    Aim,
    FaultKind,
    FaultPrimitives,
    FaultResult,
)

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    return FaultResult(INJECTED, placement.close_broker_connection(aim.worker))


KIND = FaultKind(
    "close_connection",
    "RabbitMQ closes the worker's connection (broker side)",
    apply,
    needs_broker="closes_connections",  # RabbitMQ
    how={
        LOCAL: (
            "RabbitMQ broker only: `rabbitmqctl close_connection` on the worker's connections "
            "(found by their ports), as an operator or a policy would"
        ),
        DOCKER: (
            "the same, inside the broker container, on the connections whose peer is the worker "
            "container's address on the broker network"
        ),
    },
)
