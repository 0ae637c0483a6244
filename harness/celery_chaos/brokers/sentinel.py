"""A Redis broker behind Sentinel (``broker.topology: sentinel``): clients ask the Sentinels
which node is the master, so after a failover the harness's inspection and quiet check read the
new master, as the workers do.

Workers and the harness's client reach it through Kombu's Sentinel transport: one
``sentinel://:<master password>@host:port`` per Sentinel, ``;``-separated, and the transport
options ``master_name`` and ``sentinel_kwargs`` (the Sentinels' own password: Kombu gives the
URL's password to the master only).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.sentinel import Sentinel

from celery_chaos.brokers.redis import RedisBroker

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import BrokerSpec

MASTER_NAME = "chaos"
# The topology both placements run, so a failover takes the same time on each.
SENTINELS = 3
QUORUM = 2
DOWN_AFTER_MS = 1000  # a master silent this long is down (Sentinel's default: 30 s)
FAILOVER_TIMEOUT_MS = 5000


class SentinelBroker(RedisBroker):
    """The Redis broker wherever the Sentinels say the master is now."""

    def __init__(
        self,
        spec: BrokerSpec,
        url: str,
        sentinels: list[tuple[str, int]],
        password: str,
        sentinel_password: str,
        log: Callable[[str], None] = print,
    ):
        super().__init__(spec, url, log=log)
        self.sentinels, self.password = sentinels, password
        self.sentinel_password = sentinel_password

    @classmethod
    def at(
        cls,
        spec: BrokerSpec,
        password: str,
        sentinel_password: str,
        ports: list[int],
        log: Callable[[str], None] = print,
    ) -> SentinelBroker:
        """The broker whose Sentinels listen on 127.0.0.1 ``ports``."""
        url = ";".join(f"sentinel://:{password}@127.0.0.1:{port}/0" for port in ports)
        sentinels = [("127.0.0.1", port) for port in ports]
        return cls(spec, url, sentinels, password, sentinel_password, log)

    def transport_options(self) -> dict[str, Any]:
        return {"master_name": MASTER_NAME, "sentinel_kwargs": {"password": self.sentinel_password}}

    def celery_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``settings`` with the Sentinel transport options added to the scenario's own."""
        merged = copy.deepcopy(settings)
        options = merged.get("broker_transport_options") or {}
        merged["broker_transport_options"] = options | self.transport_options()
        return merged

    def _polling_client(self) -> redis.Redis:
        """Asked anew each time: the master can move between two checks."""
        return self.client()

    def client(self) -> redis.Redis:
        """A client for the master the Sentinels name now (a failover in progress: the call
        raises, and inspection calls the broker unreachable, so nothing is called gone)."""
        sentinel = Sentinel(
            self.sentinels,
            sentinel_kwargs={"password": self.sentinel_password, "socket_timeout": 2},
            password=self.password,
            socket_timeout=5,
            socket_connect_timeout=2,
        )
        return sentinel.master_for(MASTER_NAME, redis_class=redis.Redis)
