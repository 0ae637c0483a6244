"""The agent's synchronous link to the ledger: every write waits for the ledger's answer.

Used where an answer is needed (attempt numbers with synchronous writes, armed breakpoints, the
waits they cause, locks and idempotency keys) and for every event when writes are synchronous.
It speaks RESP itself (``agent.resp``), so a worker needs no redis-py: an app on RabbitMQ has
none. The events are byte for byte those of the harness's ``celery_chaos.ledger.Ledger``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from celery_chaos.agent.resp import StoreClient
from celery_chaos.core import history as h

# Numbers an attempt and appends its attempt_start event (ARGV[1], the event's JSON without its
# closing brace) with that number, atomically and in one round trip (as ledger.Ledger does).
_START_ATTEMPT = """
local number = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[1] .. ', "attempt": ' .. number .. '}')
return number
"""
# BLPOP waits at most this long per call: a fault can take longer to inject than one socket read
# should block (a RabbitMQ container restarts in ~10 s), and a read timeout would fail the task.
WAIT_STEP_SECONDS = 5.0


class SyncLedger:
    """The worker side of the ledger, synchronous; ``client`` is also what ``store()`` gives an
    app whose environment has no redis-py."""

    def __init__(self, url: str, socket_timeout: float = 10) -> None:
        self.client = StoreClient(url, timeout=socket_timeout)

    def record(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = h.make_event(event_type, **fields)
        self.client.execute_command("RPUSH", h.HISTORY_KEY, json.dumps(event, default=str))
        return event

    def start_attempt(self, task_id: str, **fields: Any) -> int:
        """Number the next attempt of ``task_id`` and record its ``attempt_start``: one trip."""
        event = h.make_event(h.ATTEMPT_START, task_id=task_id, **fields)
        head = json.dumps(event, default=str)[:-1]
        counter = h.ATTEMPT_COUNTER_KEY.format(task_id=task_id)
        return int(self.client.eval(_START_ATTEMPT, 2, counter, h.HISTORY_KEY, head))

    def checkpoint(self, event: dict[str, Any], point: str) -> bool:
        """Record a checkpoint event and say whether breakpoint ``point`` is armed: one trip."""
        _, armed = self.client.pipeline(
            ("RPUSH", h.HISTORY_KEY, json.dumps(event, default=str)),
            ("SISMEMBER", h.BREAKPOINTS_KEY, point),
        )
        return bool(armed)

    def wait_for_release(self, point: str, timeout: float) -> bool:
        """Block until the harness releases ``point`` (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            # BLPOP takes fractional seconds (Redis >= 6); under 1 ms it would mean "forever".
            wait = max(0.01, min(WAIT_STEP_SECONDS, remaining))
            if self.client.blpop(h.RELEASE_KEY.format(point=point), wait):
                return True
        return False

    def close(self) -> None:
        self.client.close()
