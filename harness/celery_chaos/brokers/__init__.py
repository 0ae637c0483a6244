"""Brokers: where task messages wait, one module per kind (``redis``, ``rabbitmq``), apart from
where their server runs (``celery_chaos.placements``)."""

from __future__ import annotations

from celery_chaos.brokers.base import Broker
from celery_chaos.brokers.rabbitmq import RabbitMQBroker
from celery_chaos.brokers.redis import RedisBroker

# The one table of broker kinds (``broker.kind`` in a scenario).
BROKERS: dict[str, type[Broker]] = {"redis": RedisBroker, "rabbitmq": RabbitMQBroker}

__all__ = ["BROKERS", "Broker", "RabbitMQBroker", "RedisBroker", "kinds_that_close_connections"]


def kinds_that_close_connections() -> list[str]:
    """The broker kinds that can carry out ``close_connection``, for the refusal's reason."""
    return [kind for kind, broker in BROKERS.items() if broker.closes_connections]
