"""Reading the broker's state: which dispatched tasks still have a message in Redis.

Kombu's Redis transport keeps waiting messages in one list per queue (plus priority lists named
``queue\\x06\\x16N``) and messages delivered but not yet acknowledged in the ``unacked`` hash
(restored to the queue after ``visibility_timeout`` by a periodic sweep). A task found in either
place is *pending*, not lost.
"""

from __future__ import annotations

import json
from collections import defaultdict

import redis

from celery_chaos.core.broker_state import BrokerState

UNACKED_KEY = "unacked"


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


def inspect(client: redis.Redis) -> BrokerState:
    """Snapshot where every task message sits; an unreachable broker gives ``reachable=False``."""
    locations: dict[str, list[str]] = defaultdict(list)
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            name = key.decode(errors="replace").split("\x06\x16")[0]
            if kind == b"list":
                for payload in client.lrange(key, 0, -1):
                    task_id = _task_id(payload)
                    if task_id:
                        locations[task_id].append(f"queue:{name}")
            elif kind == b"hash" and key == UNACKED_KEY.encode():
                for payload in client.hvals(key):
                    task_id = _task_id(payload)
                    if task_id:
                        locations[task_id].append("unacked")
    except redis.RedisError:
        return BrokerState(reachable=False)
    return BrokerState(reachable=True, locations=dict(locations))
