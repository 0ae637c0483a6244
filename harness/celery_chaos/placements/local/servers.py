"""Which local server process runs which broker kind: the one table the local placement reads,
so it never asks which kind it runs (a new broker kind adds a server class and one row)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from celery_chaos.brokers.base import Broker
from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.local.rabbitmq_server import RabbitMQServer
from celery_chaos.placements.local.rabbitmq_shared import SharedRabbitMQ
from celery_chaos.placements.local.redis_server import RedisServer
from celery_chaos.placements.local.sentinel_server import SentinelServer
from celery_chaos.placements.sharing import can_share


class BrokerServer(Protocol):
    """What the local placement does with the broker's server process, whatever its kind."""

    name: str
    port: int
    on_spawn: Callable[[subprocess.Popen], None] | None

    def missing(self) -> str | None:
        """Why this host cannot run the server (checked before anything starts), or None."""

    def start(self) -> None: ...

    def restart(self, sig: int, down_for: float = 0.0) -> None: ...

    def restart_detail(self) -> str:
        """The fault's detail line after :meth:`restart`."""

    def discard(self) -> None:
        """Stop it for good at the end of the run (its log stays with the run's report)."""

    def broker(self, spec: BrokerSpec, log: Callable[[str], None]) -> Broker: ...


def _redis(spec: BrokerSpec, workdir: Path) -> BrokerServer:
    if spec.topology == "sentinel":
        return SentinelServer(spec, workdir)
    return RedisServer("broker", workdir, persistence=spec.persistence)


def _rabbitmq(spec: BrokerSpec, workdir: Path) -> BrokerServer:
    return RabbitMQServer("broker", workdir, spec.consumer_timeout)


BROKER_SERVERS: dict[str, Callable[[BrokerSpec, Path], BrokerServer]] = {
    "redis": _redis,
    "rabbitmq": _rabbitmq,
}


def broker_server(
    scenario: Scenario, workdir: Path, run_id: str, shared: SharedRabbitMQ | None = None
) -> BrokerServer:
    """The scenario's broker server: a vhost of the suite's ``shared`` RabbitMQ node where the
    scenario can share one (:func:`~.rabbitmq_shared.can_share`), else a server of its own."""
    if shared is not None and can_share(scenario):
        return shared.lease(run_id, workdir)
    return BROKER_SERVERS[scenario.broker.kind](scenario.broker, workdir)
