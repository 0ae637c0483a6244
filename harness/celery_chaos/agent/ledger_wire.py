"""The agent's fire-and-forget link to the ledger: one raw socket per process, replies off.

Why: a synchronous round trip per event was most of the agent's cost (issue 22). A ``sendall``
that returned has handed the bytes to the kernel, which still delivers them after the process is
SIGKILLed or OOM-killed, so an event needs no answer to be safe; only the loss of the host loses
kernel buffers, and the ledger is never on a faulted host. Redis reads a connection in order and
frees it only after reading its end, so once a writer's connection is gone from ``CLIENT LIST``
every byte it sent has been applied (the run's barrier, ``run.barrier``).

Attempt numbers are given by the ledger: the attempt_start script INCRs the task's counter and
stores the number under a per-attempt token key; later events of the attempt name the token and
the server writes the number in, so the JSON is byte for byte what the synchronous agent writes.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from celery_chaos.agent.resp import ReplyError, command, open_socket, read_reply
from celery_chaos.core import history as h

__all__ = ["CLIENT_NAME_PREFIX", "ReplyError", "WireLedger", "command"]

CLIENT_NAME_PREFIX = "chaos-agent-"
TOKEN_KEY = "chaos:attempt-token:{token}"
TOKEN_TTL_SECONDS = 86400
# Stands for the attempt number in an event's JSON until the ledger writes the number there.
_PLACEHOLDER = -918273645
_MARK = f'"attempt": {_PLACEHOLDER}'

# KEYS: counter, history, token key. ARGV: JSON before and after the number.
_START = f"""
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[3], n, 'EX', {TOKEN_TTL_SECONDS})
redis.call('RPUSH', KEYS[2], ARGV[1] .. n .. ARGV[2])
"""
# KEYS: token key, history. ARGV: JSON before and after the number, 'end' to drop the token.
_NUMBERED = """
local n = redis.call('GET', KEYS[1]) or 'null'
redis.call('RPUSH', KEYS[2], ARGV[1] .. n .. ARGV[2])
if ARGV[3] == 'end' then redis.call('DEL', KEYS[1]) end
"""
# As _NUMBERED, then whether the breakpoint ARGV[3] .. n is armed, and n: one round trip.
_CHECKPOINT = f"""
local n = redis.call('GET', KEYS[1]) or 'null'
redis.call('RPUSH', KEYS[2], ARGV[1] .. n .. ARGV[2])
return {{redis.call('SISMEMBER', '{h.BREAKPOINTS_KEY}', ARGV[3] .. n), n}}
"""


def split_event(event_type: str, last: bool = False, **fields: Any) -> tuple[str, str]:
    """The event's JSON cut where the attempt number goes: right after ``task_id``, where the
    synchronous agent puts it (``last``: at the end, as attempt_start has it)."""
    ordered: dict[str, Any] = {}
    for name, value in fields.items():
        ordered[name] = value
        if name == "task_id" and not last:
            ordered["attempt"] = _PLACEHOLDER
    ordered.setdefault("attempt", _PLACEHOLDER)
    event = h.make_event(event_type, **ordered)
    head, _, tail = json.dumps(event, default=str).partition(_MARK)
    return head + '"attempt": ', tail


class WireLedger:
    """Events as pre-encoded commands on a ``CLIENT REPLY OFF`` connection; a synchronous
    exchange (``CLIENT REPLY ON`` on the same connection) only when an answer is needed, which
    also proves everything sent before it was applied."""

    def __init__(self, url: str) -> None:
        # AUTH/SELECT/SETNAME are read while replies are on: an AUTH error must not go unseen.
        self.sock, self.reader = open_socket(url, 10, f"{CLIENT_NAME_PREFIX}{os.getpid()}")
        self.sock.sendall(command("CLIENT", "REPLY", "OFF"))  # OFF itself is not answered
        self.lock = threading.Lock()  # a thread pool's threads share it: one command at a time

    def send(self, *args: Any) -> None:
        data = command(*args)
        with self.lock:
            self.sock.sendall(data)

    def exchange(self, *commands: bytes) -> list[Any]:
        """Send ``commands`` with replies on; their answers, in order."""
        on, off = command("CLIENT", "REPLY", "ON"), command("CLIENT", "REPLY", "OFF")
        with self.lock:
            self.sock.sendall(on + b"".join(commands) + off)
            replies = [self._reply() for _ in range(len(commands) + 1)][1:]  # after ON's +OK
        errors = [reply for reply in replies if isinstance(reply, ReplyError)]
        if errors:  # raised only once every reply is read: the connection stays in step
            raise errors[0]
        return replies

    def flush(self) -> None:
        """Return once everything sent before is applied (a synchronous PING)."""
        self.exchange(command("PING"))

    def record(self, event_type: str, **fields: Any) -> None:
        self.send(
            "RPUSH", h.HISTORY_KEY, json.dumps(h.make_event(event_type, **fields), default=str)
        )

    def start_attempt(self, task_id: str, token: str, **fields: Any) -> None:
        head, tail = split_event(h.ATTEMPT_START, last=True, task_id=task_id, **fields)
        counter = h.ATTEMPT_COUNTER_KEY.format(task_id=task_id)
        self.send("EVAL", _START, 3, counter, h.HISTORY_KEY, _token_key(token), head, tail)

    def record_numbered(
        self, event_type: str, token: str, end: bool = False, **fields: Any
    ) -> None:
        """An event of the attempt ``token``; ``end`` drops the token (the attempt is over)."""
        head, tail = split_event(event_type, **fields)
        key = _token_key(token)
        self.send("EVAL", _NUMBERED, 2, key, h.HISTORY_KEY, head, tail, "end" if end else "")

    def checkpoint(
        self, token: str, task_id: str, name: str, **fields: Any
    ) -> tuple[bool, int | None]:
        """Record a checkpoint and ask if it is armed: (armed, attempt number)."""
        head, tail = split_event(h.CHECKPOINT, task_id=task_id, name=name, **fields)
        point = h.breakpoint_id(task_id, name, 0)[:-1]  # "task|name|": the script adds n
        run = command("EVAL", _CHECKPOINT, 2, _token_key(token), h.HISTORY_KEY, head, tail, point)
        armed, number = self.exchange(run)[0]
        return bool(armed), int(number) if number.isdigit() else None

    def close(self) -> None:
        self.reader.close()  # the socket closes only once its file object is closed too
        self.sock.close()

    def _reply(self) -> Any:
        return read_reply(self.reader)


def _token_key(token: str) -> str:
    return TOKEN_KEY.format(token=token)
