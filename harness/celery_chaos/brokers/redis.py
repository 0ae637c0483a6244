"""A Redis broker: which dispatched tasks still have a message in it.

Kombu's Redis transport keeps waiting messages in one list per queue (plus priority lists named
``queue\\x06\\x16N``) and messages delivered but not yet acknowledged in the ``unacked`` hash
(restored to the queue after ``visibility_timeout`` by a periodic sweep). A task found in either
place is *pending*, not lost.

The sweep runs under a Redis lock, ``unacked_mutex``, that expires after
``unacked_mutex_expire`` (300 s by default). A worker SIGKILLed inside its sweep leaves the lock
held, and no worker restores anything until it expires (measured: 5 of 30 kills at a 10 ms sweep
interval; about one in a few hundred at 1 s). Inspection says so in ``BrokerState.notes``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

import redis

from celery_chaos.brokers.base import Broker
from celery_chaos.core.broker_state import BrokerState

UNACKED_KEY = "unacked"
RESTORE_MUTEX_KEY = "unacked_mutex"  # Kombu's default ``unacked_mutex_key``
LIVE_SWEEP_SECONDS = 0.05  # a live worker's sweep lets go of the mutex within milliseconds


def _task_id(payload: bytes | str) -> str | None:
    try:
        message = json.loads(payload)
    except (ValueError, TypeError):
        return None
    if isinstance(message, list):  # unacked entries are [message, exchange, routing_key]
        message = message[0] if message else {}
    if not isinstance(message, dict):
        return None
    headers = message.get("headers") or {}
    properties = message.get("properties") or {}
    return headers.get("id") or properties.get("correlation_id")


def inspect(client: redis.Redis, explain: bool = False) -> BrokerState:
    """Snapshot where every task message sits; an unreachable broker gives ``reachable=False``.
    ``explain`` (the final snapshot) adds :func:`restore_blocked`'s note."""
    locations: dict[str, list[str]] = defaultdict(list)
    try:
        for key, payloads in _message_keys(client):
            name = key.decode(errors="replace").split("\x06\x16")[0]
            where = "unacked" if key == UNACKED_KEY.encode() else f"queue:{name}"
            for payload in payloads:
                task_id = _task_id(payload)
                if task_id:
                    locations[task_id].append(where)
        notes = [note] if explain and (note := restore_blocked(client)) else []
    except redis.RedisError:
        return BrokerState(reachable=False)
    return BrokerState(reachable=True, locations=dict(locations), notes=notes)


def _message_keys(client: redis.Redis) -> list[tuple[bytes, list[bytes]]]:
    """Every list (a queue) and the unacked hash with their payloads, in two pipelined round
    trips after the key scan (the run loop asks up to every 10 ms while it waits to end)."""
    keys = list(client.scan_iter(count=1000))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.type(key)
        kinds = pipe.execute()
    wanted = [
        (key, kind)
        for key, kind in zip(keys, kinds, strict=True)
        if kind == b"list" or (kind == b"hash" and key == UNACKED_KEY.encode())
    ]
    with client.pipeline(transaction=False) as pipe:
        for key, kind in wanted:
            pipe.lrange(key, 0, -1) if kind == b"list" else pipe.hvals(key)
        payloads = pipe.execute()
    return [(key, values) for (key, _), values in zip(wanted, payloads, strict=True)]


def restore_blocked(client: redis.Redis) -> str | None:
    """Why no worker restores an unacknowledged message yet, or None: the restore mutex is held
    by the same owner over a pause no live sweep lasts (a dead worker's, until it expires)."""
    owner = client.get(RESTORE_MUTEX_KEY)
    if owner is None:
        return None
    time.sleep(LIVE_SWEEP_SECONDS)
    ttl = client.pttl(RESTORE_MUTEX_KEY)
    if client.get(RESTORE_MUTEX_KEY) != owner or ttl <= 0:
        return None
    return (
        f"Kombu's {RESTORE_MUTEX_KEY} is held for another {ttl / 1000:.0f}s: no worker restores"
        " an unacknowledged message until it expires (a worker killed inside its restore sweep"
        " leaves it held for unacked_mutex_expire)"
    )


class RedisBroker(Broker):
    """A Redis broker: inspection reads its keys; nothing about it disturbs a worker."""

    kind = "redis"
    _poller: redis.Redis | None = None  # see _polling_client

    def client(self) -> redis.Redis:
        """A client for the broker Redis, from the harness's side (inspection, tests)."""
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=2)

    def _polling_client(self) -> redis.Redis:
        """One client for the run loop's occupancy checks, up to one per 10 ms pass: a new
        client each time cost a TCP connection and a handshake per check (py-spy on a suite
        run: the checks were 22 % of the harness's samples, connecting 9 %). After a broker
        restart redis-py reconnects it; a check that fails reads as unreachable, which ends
        nothing."""
        if self._poller is None:
            self._poller = self.client()
        return self._poller

    def state(self, live: bool = False) -> BrokerState:
        """Reading Redis disturbs nothing, so ``live`` changes nothing; with the restore note."""
        return inspect(self.client(), explain=True)

    def occupancy(self, task_ids: set[str]) -> tuple[bool, bool]:
        state = inspect(self._polling_client())
        return state.may_hold(task_ids), not state.reachable or bool(state.locations)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:
            return False

    def version(self) -> str | None:
        info = self.client().info("server")
        return str(info.get("redis_version")) if info.get("redis_version") else None
