"""The ledger: the Redis server that stores the history, never touched by a fault.

The history's event format is pure (``core.history``); this module is its storage: one Redis
list appended with RPUSH (atomic, so writers never interleave), plus the small shared state the
agent needs (attempt counters, armed breakpoints, locks).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from celery_chaos.core.history import (
    ATTEMPT_COUNTER_KEY,
    ATTEMPT_START,
    BREAKPOINTS_KEY,
    HISTORY_KEY,
    LOCK_KEY_PREFIX,
    RELEASE_KEY,
    Event,
    decode,
    make_event,
)

# Numbers an attempt and appends its attempt_start event (ARGV[1], the event's JSON without its
# closing brace) with that number, atomically and in one round trip.
_START_ATTEMPT = """
local number = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[1] .. ', "attempt": ' .. number .. '}')
return number
"""


@dataclass
class Ledger:
    """Append-only event log plus the small amount of shared state the agent needs."""

    client: redis.Redis
    _read_offset: int = field(default=0, repr=False)
    _start_attempt: Any = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str, socket_timeout: float = 10) -> Ledger:
        return cls(
            redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=5)
        )

    def record(self, event_type: str, **fields: Any) -> Event:
        event = make_event(event_type, **fields)
        self.client.rpush(HISTORY_KEY, json.dumps(event, default=str))
        return event

    def read_all(self) -> list[Event]:
        return self.read_from(0)

    def read_from(self, start: int) -> list[Event]:
        """Events from position ``start`` on (positions are the events' ``seq``)."""
        return list(decode(self.client.lrange(HISTORY_KEY, start, -1), start=start))

    def length(self) -> int:
        return int(self.client.llen(HISTORY_KEY))

    def poll(self) -> list[Event]:
        """Events appended since the previous poll (an incremental cursor for the run loop)."""
        raw = self.client.lrange(HISTORY_KEY, self._read_offset, -1)
        events = list(decode(raw, start=self._read_offset))
        self._read_offset += len(raw)
        return events

    def start_attempt(self, task_id: str, **fields: Any) -> int:
        """Number the next attempt of ``task_id`` and record its ``attempt_start`` event in one
        round trip; returns the number. The agent does this for every task it runs: as two
        commands (INCR, then RPUSH) it was a third of the agent's cost per task."""
        if self._start_attempt is None:
            self._start_attempt = self.client.register_script(_START_ATTEMPT)
        event = make_event(ATTEMPT_START, task_id=task_id, **fields)
        head = json.dumps(event, default=str)[:-1]
        keys = [ATTEMPT_COUNTER_KEY.format(task_id=task_id), HISTORY_KEY]
        return int(self._start_attempt(keys=keys, args=[head]))

    def arm_breakpoint(self, point: str) -> None:
        self.client.sadd(BREAKPOINTS_KEY, point)

    def release_breakpoint(self, point: str) -> None:
        """Let a task blocked at an armed checkpoint go on (no-op if it already died)."""
        self.client.srem(BREAKPOINTS_KEY, point)
        self.client.rpush(RELEASE_KEY.format(point=point), "go")

    def wait_for_release(self, point: str, timeout: float) -> bool:
        """Block until the harness releases ``point`` (True) or ``timeout`` passes (False).

        Waits in slices shorter than the client's socket timeout: a fault can take longer to
        inject than one socket read may block (a RabbitMQ container restarts in ~10 s), and a
        read timeout would fail the task the breakpoint holds instead of letting it go on.
        """
        read_timeout = self.client.connection_pool.connection_kwargs.get("socket_timeout")
        step = max(0.1, read_timeout / 2) if read_timeout else timeout
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            # BLPOP takes fractional seconds (Redis >= 6); under 1 ms it would mean "forever".
            wait = max(0.01, min(step, remaining))
            if self.client.blpop([RELEASE_KEY.format(point=point)], timeout=wait):
                return True
        return False

    def held_locks(self) -> dict[str, str]:
        """Locks held right now, as lock name -> owning task id."""
        keys = list(self.client.scan_iter(match=LOCK_KEY_PREFIX + "*", count=1000))
        if not keys:
            return {}
        owners = self.client.mget(keys)
        prefix = len(LOCK_KEY_PREFIX)
        return {
            key.decode()[prefix:]: owner.decode()
            for key, owner in zip(keys, owners, strict=True)
            if owner is not None
        }
