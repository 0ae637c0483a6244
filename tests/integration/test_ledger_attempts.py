"""Ledger.start_attempt against a real redis-server: the agent numbers an attempt and records its
``attempt_start`` in one round trip, and the history reads exactly as before."""

from __future__ import annotations

import threading

import pytest
from celery_chaos.core import history as h
from celery_chaos.ledger import Ledger
from celery_chaos.placements.local.redis_server import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger(server: RedisServer) -> Ledger:
    return Ledger.from_url(server.url)


def test_attempts_are_numbered_and_recorded_in_one_command(ledger: Ledger):
    fields = {"pid": 7, "task": "t", "worker": "w0@x", "redelivered": False, "retries": 0}
    assert ledger.start_attempt("task-a", **fields) == 1
    assert ledger.start_attempt("task-b", **fields) == 1
    assert ledger.start_attempt("task-a", **fields, note='quote " and } brace') == 2
    events = ledger.read_all()
    assert [(e["type"], e["task_id"], e["attempt"]) for e in events] == [
        (h.ATTEMPT_START, "task-a", 1),
        (h.ATTEMPT_START, "task-b", 1),
        (h.ATTEMPT_START, "task-a", 2),
    ]
    assert events[2]["note"] == 'quote " and } brace'
    assert {k: events[0][k] for k in fields} == fields and isinstance(events[0]["ts"], float)
    before = ledger.client.info("commandstats")
    ledger.start_attempt("task-c", **fields)
    after = ledger.client.info("commandstats")
    assert (
        after["cmdstat_evalsha"]["calls"] - before.get("cmdstat_evalsha", {"calls": 0})["calls"]
        == 1
    )


def test_concurrent_attempts_get_distinct_numbers_in_history_order(server, ledger: Ledger):
    clients = [Ledger.from_url(server.url) for _ in range(4)]
    threads = [
        threading.Thread(target=lambda c=c: [c.start_attempt("same") for _ in range(50)])
        for c in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = [e["attempt"] for e in ledger.read_all()]
    assert numbers == list(range(1, 201))  # atomic: the list order is the numbering order


def test_a_breakpoint_holds_longer_than_one_socket_read(server):
    """A fault can take longer to inject than the ledger's socket timeout (a RabbitMQ container
    restart takes ~10 s): the held task must wait it out, not fail with a read timeout."""
    held = Ledger.from_url(server.url, socket_timeout=0.5)
    harness = Ledger.from_url(server.url)
    releasing = threading.Event()
    threading.Timer(1.5, lambda: (releasing.set(), harness.release_breakpoint("p"))).start()
    assert held.wait_for_release("p", timeout=30)
    assert releasing.is_set()


def test_a_breakpoint_nobody_releases_times_out(server):
    held = Ledger.from_url(server.url, socket_timeout=0.5)
    assert not held.wait_for_release("never", timeout=1.2)
