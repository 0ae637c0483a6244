"""The checker's RabbitMQ dead-letter and delivery-limit verdicts on synthetic histories:
``dead_lettered`` (parked in a dead-letter queue, not ``pending``) and the
``dropped_at_delivery_limit`` label of a ``lost`` task (measured on RabbitMQ 3.10: a quorum
queue with delivery limit N delivers a message N + 1 times, then drops it)."""

from __future__ import annotations

import pytest
from celery_chaos.core.broker_state import BrokerState, dead_letter_location, is_dead_letter
from celery_chaos.core.checker import check

from tests.unit.histories import completed, dispatch, end, failure, process_exit, start
from tests.unit.test_canvas_checker import CHAIN, workflow

A = "task-a"
PARKED = dead_letter_location("celery.dead", "delivery_limit", "celery")


def poison(attempts: int, queue: str | None = "celery", first: int = 1) -> list[dict]:
    """Attempts that each kill their pool process, reported as WorkerLostError (as Celery does
    with reject_on_worker_lost, which requeues the message)."""
    history = []
    for number in range(first, first + attempts):
        t = float(number)
        history += [
            start(A, number, t, redelivered=number > first, queue=queue),
            process_exit(A, number, t + 0.1, reason="process exited with no fault injected"),
            failure(A, t + 0.2),
        ]
    return history


def test_a_dead_letter_location_names_queue_reason_and_origin() -> None:
    assert PARKED == "dead_letter:celery.dead:delivery_limit:celery"
    assert is_dead_letter(PARKED)
    assert not is_dead_letter("queue:celery") and not is_dead_letter("unacked")


def test_a_task_whose_only_message_is_a_dead_letter_is_dead_lettered_not_pending() -> None:
    broker = BrokerState(locations={A: [PARKED]}, delivery_limits={"celery": 2})
    verdicts = check([dispatch(A, 0), *poison(3)], broker)

    (task,) = verdicts.tasks
    assert task.outcome == "dead_lettered"
    assert task.labels == ["failed"]  # not dropped: the broker kept it, parked
    assert task.in_broker == [PARKED]
    assert verdicts.counts["dead_lettered"] == 1
    assert verdicts.counts["pending"] == verdicts.counts["lost"] == 0
    assert verdicts.offenders("dead_lettered") == [f"{task.task}[{A}]"]


@pytest.mark.parametrize("elsewhere", ["queue:celery", "unacked"])
def test_a_dead_letter_with_a_live_copy_is_pending(elsewhere: str) -> None:
    """A copy that is ready or unacked in a work queue will run: the task is not parked."""
    broker = BrokerState(locations={A: [PARKED, elsewhere]})
    assert check([dispatch(A, 0), *poison(1)], broker).tasks[0].outcome == "pending"


def test_a_running_attempt_beats_a_dead_letter() -> None:
    history = [dispatch(A, 0), start(A, 1, 0.1)]
    assert check(history, BrokerState(locations={A: [PARKED]})).tasks[0].outcome == "pending"


def test_a_successful_task_with_a_dead_letter_copy_is_still_ok() -> None:
    history = [dispatch(A, 0), start(A, 1, 0.1), end(A, 1, 0.2)]
    assert check(history, BrokerState(locations={A: [PARKED]})).tasks[0].outcome == "ok"


@pytest.mark.parametrize(
    ("limit", "attempts", "dropped"),
    [(2, 3, True), (2, 2, False), (0, 1, True), (5, 3, False), (None, 3, False)],
)
def test_a_lost_task_delivered_past_its_queue_limit_was_dropped_there(
    limit: int | None, attempts: int, dropped: bool
) -> None:
    """Limit N allows N + 1 deliveries: a lost task with more attempts than N from that queue
    was dropped at the limit; with fewer, the history does not prove it (plain ``lost``)."""
    limits = {} if limit is None else {"celery": limit}
    verdicts = check([dispatch(A, 0), *poison(attempts)], BrokerState(delivery_limits=limits))

    (task,) = verdicts.tasks
    assert task.outcome == "lost"
    assert ("dropped_at_delivery_limit" in task.labels) is dropped
    assert verdicts.counts["dropped_at_delivery_limit"] == int(dropped)


def test_the_limit_is_the_one_of_the_queue_the_last_attempt_came_from() -> None:
    broker = BrokerState(delivery_limits={"other": 2})
    assert check([dispatch(A, 0), *poison(3)], broker).tasks[0].labels == ["failed"]
    unknown_queue = check([dispatch(A, 0), *poison(3, queue=None)], broker)
    assert unknown_queue.tasks[0].labels == ["failed"]


def test_a_message_acked_on_failure_was_not_dropped_at_the_limit() -> None:
    """The last attempt ended FAILURE (the task raised, Celery acked): gone by the ack."""
    history = [dispatch(A, 0), *poison(2)]
    history += [start(A, 3, 3.0, queue="celery"), end(A, 3, 3.1, state="FAILURE")]
    verdicts = check(history, BrokerState(delivery_limits={"celery": 2}))
    assert verdicts.tasks[0].verdicts == ["lost", "failed"]


def test_a_retry_starts_a_new_message_with_its_own_delivery_count() -> None:
    """``Retry`` publishes a new message: only the deliveries after it count toward the limit."""
    history = [dispatch(A, 0), start(A, 1, 0.1, queue="celery"), end(A, 1, 0.2, state="RETRY")]
    history += poison(2, first=2)
    verdicts = check(history, BrokerState(delivery_limits={"celery": 2}))
    assert verdicts.tasks[0].verdicts == ["lost", "failed", "retried"]
    more = check(history + poison(1, first=4), BrokerState(delivery_limits={"celery": 2}))
    assert "dropped_at_delivery_limit" in more.tasks[0].labels


def test_a_dead_lettered_chain_member_breaks_its_workflow() -> None:
    """The rest of the chain waits for a member nothing will run: broken, not pending."""
    history = workflow(CHAIN, ["a", "b", "c"]) + completed("a", 0)
    history += [start("b", 1, 2.0), process_exit("b", 1, 2.5)]
    verdicts = check(history, BrokerState(locations={"b": [PARKED]}))

    assert [t.outcome for t in verdicts.tasks] == ["ok", "dead_lettered", "lost"]
    assert verdicts.counts["workflow_broken"] == 1
    assert "was dead-lettered" in verdicts.workflows[0].reason
