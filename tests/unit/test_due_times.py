"""When a task held in a worker's memory may still run (issue 17 item 3): the due times the
harness and the agent record, and the loop's rule that no run ends before them while a live
worker may hold the task. Real workers: tests/integration/test_run_edges.py."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from celery.exceptions import Retry
from celery_chaos.agent.instrument import retry_due
from celery_chaos.core import history as h
from celery_chaos.placements.base import Worker
from celery_chaos.run.loop import DueTimes, Loop
from celery_chaos.run.workload import due_time

from tests.unit.fakes import StartedWorkers
from tests.unit.histories import WORKER, dispatch, end, event, start

A = "task-a"


def test_a_countdown_or_eta_dispatch_is_due_that_many_seconds_after_it_is_sent() -> None:
    assert due_time({"countdown": 4}, 100.0) == 104.0
    assert due_time({"eta": 2.5}, 100.0) == 102.5  # a scenario's eta is an offset in seconds
    assert due_time({"priority": 3}, 100.0) is None
    # both given: Celery's as_task_v2 turns a non-zero countdown into the ETA, replacing eta
    assert due_time({"eta": 2.5, "countdown": 6}, 100.0) == 106.0
    assert due_time({"eta": 2.5, "countdown": 0}, 100.0) == 102.5


def test_a_retry_is_due_at_its_countdown_or_its_eta() -> None:
    before = time.time()
    assert before + 5 <= retry_due(Retry(when=5)) <= time.time() + 5  # type: ignore[operator]
    eta = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert retry_due(Retry(when=eta)) == eta.timestamp()
    assert retry_due(Retry(when=eta.replace(tzinfo=None))) == eta.timestamp()  # naive: UTC
    assert retry_due(Retry(when=eta.isoformat())) == eta.timestamp()
    assert retry_due(Retry(when="not a time")) is None
    assert retry_due(None) is None


def observed(*events: dict[str, Any]) -> DueTimes:
    dues = DueTimes()
    for one in events:
        dues.observe(one)
    return dues


def held(ts: float, due: float) -> dict[str, Any]:
    return {**dispatch(A, 0, ts), "due": due}


def retried(attempt: int, ts: float, due: float) -> dict[str, Any]:
    return {**end(A, attempt, ts, state="RETRY"), "due": due}


def test_a_dispatched_countdown_is_pending_until_due_or_until_an_attempt_starts() -> None:
    assert observed(held(0.0, 5.0)).pending(4.9) == [A]
    assert observed(held(0.0, 5.0)).pending(5.0) == []
    assert observed(held(0.0, 5.0), start(A, 1, 0.1)).pending(1.0) == []


def test_a_retry_countdown_is_pending_until_the_next_attempt_starts() -> None:
    history = [dispatch(A, 0), start(A, 1, 0.1), retried(1, 0.2, 5.0)]
    assert observed(*history).pending(1.0) == [A]
    assert observed(*history, start(A, 2, 5.0)).pending(1.0) == []
    # the retry's next attempt started before its RETRY end was recorded: nothing is held
    assert (
        observed(dispatch(A, 0), start(A, 1, 0.1), start(A, 2, 0.2), retried(1, 0.3, 9)).due == {}
    )


def test_a_retry_whose_attempt_number_is_unknown_still_holds_the_end() -> None:
    """The agent records ``attempt: None`` when it cannot tell the attempt (attempt_end with no
    current attempt): the retry is held until the attempt after the latest one starts."""
    history = [dispatch(A, 0), start(A, 1, 0.1), {**retried(1, 0.2, 5.0), "attempt": None}]
    assert observed(*history).pending(1.0) == [A]
    assert observed(*history, start(A, 2, 5.0)).pending(1.0) == []


def test_a_task_that_ended_terminally_is_held_by_nobody() -> None:
    history = [held(0.0, 5.0), end(A, 1, 0.5, state="FAILURE")]  # e.g. reported by the worker
    assert observed(*history).pending(1.0) == []


def test_an_older_attempts_late_end_does_not_release_a_newer_retry() -> None:
    """Attempt 1 (cut off, still running) ends SUCCESS after attempt 2 asked for a retry: the
    retry's message is still held and may run (a duplicate), so the end must wait for it."""
    history = [dispatch(A, 0), start(A, 1, 0.1), start(A, 2, 0.2), retried(2, 0.3, 5.0)]
    assert observed(*history, end(A, 1, 0.4)).pending(1.0) == [A]


def loop_over(workers: list[str], history: list[dict[str, Any]]) -> Loop:
    """A Loop's bookkeeping only (no backend calls): its workers and the events it polled."""
    loop = Loop.__new__(Loop)
    loop.backend = StartedWorkers([Worker(i, n, None) for i, n in enumerate(workers)])
    loop.dues, loop.exited = observed(*history), set()
    for one in history:
        if one["type"] == h.WORKER_EXIT:
            loop.exited.add(one["worker"])
    return loop


@pytest.mark.parametrize(
    ("workers", "exits", "waits"),
    [
        ([WORKER], [], True),  # the live worker may hold it
        ([WORKER], [WORKER], False),  # its only possible holder is dead
        ([WORKER, "w1@chaos-test"], [WORKER], True),  # another live worker may hold it
    ],
    ids=["live", "dead", "one-of-two-dead"],
)
def test_a_held_task_blocks_the_end_while_a_worker_that_may_hold_it_lives(
    workers: list[str], exits: list[str], waits: bool
) -> None:
    due = time.time() + 60
    gone = [event(h.WORKER_EXIT, 1.0, worker=w, pid=1, exitcode=1, signal=None) for w in exits]
    loop = loop_over(workers, [held(0.0, due), *gone])
    assert loop.held_in_memory() is waits


def test_a_task_past_its_due_time_blocks_nothing() -> None:
    past = (datetime.now(timezone.utc) - timedelta(seconds=1)).timestamp()
    assert loop_over([WORKER], [held(0.0, past)]).held_in_memory() is False
