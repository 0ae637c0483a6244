"""The agent's own Redis client (agent.resp, agent.ledger_sync) against a real redis-server: the
commands an app's code and the agent send without redis-py, errors raised in step, a wrong
password refused, a breakpoint wait that returns on release and on timeout."""

from __future__ import annotations

import json
import threading

import pytest
from celery_chaos.agent.ledger_sync import SyncLedger
from celery_chaos.agent.resp import ReplyError, StoreClient
from celery_chaos.core import history as h
from celery_chaos.ledger import Ledger
from celery_chaos.placements.local.redis_server import RedisServer

pytestmark = pytest.mark.integration


def test_store_client_speaks_what_the_sample_app_and_locks_use(server: RedisServer) -> None:
    client = StoreClient(server.url)
    assert client.set("lock:a", "task-1", nx=True) is True
    assert client.set("lock:a", "task-2", nx=True) is False
    assert client.get("lock:a") == b"task-1"
    assert client.hset("doc:1", mapping={"status": "ingesting", "parts": 0}) == 2
    assert client.hincrby("doc:1", "parts", 1) == 1
    script = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
    assert client.eval(script + " return 0", 1, "lock:a", "task-1") == 1
    with pytest.raises(ReplyError):
        client.hincrby("doc:1", "status", 1)  # not an integer: an error, raised
    assert client.ping() == "PONG"  # the connection is still in step after the error
    client.close()


def test_a_wrong_password_is_an_error(server: RedisServer) -> None:
    with pytest.raises(ReplyError):
        StoreClient(server.url.replace(server.password, "wrong"))


def test_sync_ledger_writes_what_the_harness_ledger_reads(server: RedisServer) -> None:
    ledger = SyncLedger(server.url)
    assert ledger.start_attempt("t1", task="x", pid=1) == 1
    assert ledger.start_attempt("t1", task="x", pid=1) == 2
    event = h.make_event(h.CHECKPOINT, task_id="t1", attempt=2, name="s", pid=1)
    point = h.breakpoint_id("t1", "s", 2)
    assert ledger.checkpoint(event, point) is False
    reader = Ledger.from_url(server.url)
    reader.arm_breakpoint(point)
    assert ledger.checkpoint(event, point) is True
    events = reader.read_all()
    assert [(e["type"], e.get("attempt")) for e in events] == [
        ("attempt_start", 1), ("attempt_start", 2), ("checkpoint", 2), ("checkpoint", 2),
    ]  # fmt: skip
    assert json.loads(json.dumps(events[2])) == events[2]
    assert ledger.wait_for_release(point, 0.2) is False  # nobody released it: times out
    release = threading.Timer(0.1, reader.release_breakpoint, args=(point,))
    release.start()
    assert ledger.wait_for_release(point, 30) is True
    release.join()
    ledger.close()
