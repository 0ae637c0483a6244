"""The fire-and-forget agent (agent.ledger_wire) against a real redis-server: the history it
writes is byte for byte the synchronous agent's, a SIGKILLed writer loses nothing, armed
checkpoints still fire at the attempt they name, and the run's barrier waits for every writer."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator

import pytest
from celery import Celery
from celery_chaos.agent import instrument
from celery_chaos.agent.ledger_wire import ReplyError, WireLedger
from celery_chaos.core import history as h
from celery_chaos.ledger import Ledger
from celery_chaos.placements import BackendError
from celery_chaos.placements.local.redis_server import RedisServer
from celery_chaos.run.barrier import agent_connections, wait_agents_gone

pytestmark = pytest.mark.integration

app = Celery("wire-test", set_as_current=False)


@app.task(name="wire.work")
def work() -> None:
    """Never run: its request context is what the agent's signal handlers read."""


@pytest.fixture
def ledger(server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    monkeypatch.setenv(instrument.LEDGER_URL_ENV, server.url)
    monkeypatch.delenv(instrument.ARMABLE_ENV, raising=False)
    yield Ledger.from_url(server.url)
    for wire in instrument._wires.values():  # this process's connections: to this server only
        wire.close()
    instrument._wires.clear()
    instrument._ledgers.clear()


def _use(monkeypatch: pytest.MonkeyPatch, writes: str, armable: str | None = None) -> None:
    monkeypatch.setenv(instrument.WRITES_ENV, writes)
    if armable is not None:
        monkeypatch.setenv(instrument.ARMABLE_ENV, armable)


def _attempt(task_id: str, retries: int = 0) -> None:
    work.push_request(id=task_id, hostname="w0@test", retries=retries, delivery_info={})
    instrument.on_prerun(task_id=task_id, task=work)


def _end(task_id: str, state: str = "SUCCESS") -> None:
    instrument._on_postrun(task_id=task_id, state=state)
    work.pop_request()


def _everything(task_id: str) -> None:
    """Every event kind the agent writes for tasks, over two attempts."""
    _attempt(task_id)
    instrument.checkpoint("before")
    instrument.side_effect("email:1")
    with instrument.lock("account"):
        instrument.apply_once("pay:1")
    instrument._on_failure(task_id=task_id, exception=ValueError("boom"))
    _end(task_id, "FAILURE")
    _attempt(task_id, retries=1)
    instrument.checkpoint("before")
    _end(task_id)
    instrument.side_effect("outside")


def _raw(ledger: Ledger) -> list[str]:
    """The history as stored, timestamps masked (the only field that differs run to run)."""
    items = ledger.client.lrange(h.HISTORY_KEY, 0, -1)
    return [re.sub(r'"ts": [0-9.e+-]+', '"ts": 0', item.decode()) for item in items]


def test_async_writes_store_exactly_what_sync_writes_store(ledger, monkeypatch):
    _use(monkeypatch, instrument.SYNC_WRITES)
    _everything("task-1")
    sync = _raw(ledger)
    ledger.client.flushall()
    _use(monkeypatch, instrument.ASYNC_WRITES, armable="")
    _everything("task-1")
    instrument.wire().flush()
    assert _raw(ledger) == sync
    assert [(json.loads(e)["type"], json.loads(e)["attempt"]) for e in sync] == [
        (h.ATTEMPT_START, 1),
        (h.CHECKPOINT, 1),
        (h.SIDE_EFFECT, 1),
        (h.LOCK_ACQUIRED, 1),
        (h.SIDE_EFFECT, 1),
        (h.LOCK_RELEASED, 1),
        (h.TASK_FAILURE, 1),
        (h.ATTEMPT_END, 1),
        (h.ATTEMPT_START, 2),
        (h.CHECKPOINT, 2),
        (h.ATTEMPT_END, 2),
        (h.SIDE_EFFECT, None),
    ]
    assert not ledger.client.keys("chaos:attempt-token:*")  # each attempt's end dropped its token


def test_an_armed_checkpoint_fires_at_the_attempt_it_names(ledger, monkeypatch):
    _use(monkeypatch, instrument.ASYNC_WRITES, armable="charge")
    point = h.breakpoint_id("task-2", "charge", 2)
    ledger.arm_breakpoint(point)
    release = h.RELEASE_KEY.format(point=point)
    ledger.client.rpush(release, "go")  # released in advance: the held attempt takes it at once
    for number in (1, 2):
        _attempt("task-2")
        instrument.checkpoint("charge")
        assert ledger.client.llen(release) == (1 if number == 1 else 0)
        _end("task-2")


def test_only_an_armable_checkpoint_waits_for_the_ledger(ledger, monkeypatch):
    _use(monkeypatch, instrument.ASYNC_WRITES, armable="charge")
    _attempt("task-3")
    instrument.wire().flush()

    def exchanges() -> int:
        return ledger.client.info("commandstats")["cmdstat_client"]["calls"]

    before = exchanges()
    instrument.checkpoint("log")
    instrument.wire().flush()  # itself CLIENT REPLY ON, then OFF
    assert exchanges() - before == 2
    before = exchanges()
    instrument.checkpoint("charge")
    assert exchanges() - before == 2
    _end("task-3")


def test_sigkilled_writers_lose_no_event_and_the_barrier_waits_for_them(
    server, ledger, monkeypatch
):
    _use(monkeypatch, instrument.ASYNC_WRITES, armable="")
    writers, effects = 20, 30
    pids = []
    for index in range(writers):
        pid = os.fork()
        if pid == 0:
            try:
                _attempt(f"task-{index}")
                for n in range(effects):
                    instrument.side_effect(f"{index}:{n}")
                os.kill(os.getpid(), signal.SIGKILL)
            finally:
                os._exit(1)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    wait_agents_gone(ledger.client, timeout=10)
    events = ledger.read_all()
    for index in range(writers):
        mine = [e for e in events if e["task_id"] == f"task-{index}"]
        assert [e["type"] for e in mine] == [h.ATTEMPT_START] + [h.SIDE_EFFECT] * effects
        assert [e["key"] for e in mine[1:]] == [f"{index}:{n}" for n in range(effects)]
        assert {e["attempt"] for e in mine} == {1}


def test_the_barrier_refuses_while_a_writer_is_connected(server, ledger):
    wire = WireLedger(server.url)
    assert agent_connections(ledger.client) == [f"chaos-agent-{os.getpid()}"]
    with pytest.raises(BackendError, match="ledger barrier: 1 agent connection"):
        wait_agents_gone(ledger.client, timeout=0.2)
    wire.close()
    wait_agents_gone(ledger.client, timeout=10)


def test_a_wrong_password_is_an_error_not_silence(server):
    with pytest.raises(ReplyError):
        WireLedger(server.url.replace(server.password, "wrong"))
