"""The checker on synthetic histories: one test per verdict and per edge case that decides one."""

from __future__ import annotations

import json

import pytest
from celery_chaos.core.checker import LABELS, OUTCOMES, VERDICTS, BrokerState, check
from celery_chaos.core.scenario import parse_scenario

from tests.unit.histories import (
    TASK,
    WORKER,
    checkpoint,
    completed,
    dispatch,
    effect,
    end,
    failure,
    fault,
    killed,
    lock_acquired,
    lock_released,
    process_exit,
    start,
    worker_exit,
)

A, B, C = "task-a", "task-b", "task-c"


def only_nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {verdict: count for verdict, count in counts.items() if count}


# --- outcomes ----------------------------------------------------------------------------


def test_single_successful_attempt_is_ok() -> None:
    verdicts = check(completed(A, 0))

    (task,) = verdicts.tasks
    assert task.outcome == "ok"
    assert task.labels == []
    assert task.redelivery_latencies == []
    assert only_nonzero(verdicts.counts) == {"ok": 1}


def test_killed_then_redelivered_is_recovered_with_latency_from_the_fault() -> None:
    history = [
        dispatch(A, 0, 10.0),
        start(A, 1, 10.1, pid=101),
        checkpoint(A, 1, "step-5", 10.6, pid=101),
        fault(0, 11.0, [(A, 1)]),
        process_exit(A, 1, 11.05),  # observed later than the kill: must not move the latency
        start(A, 2, 11.25, pid=102, redelivered=True),
        end(A, 2, 12.0, pid=102),
    ]
    verdicts = check(history)

    (task,) = verdicts.tasks
    assert task.outcome == "recovered"
    assert task.redelivery_latencies == [pytest.approx(0.25)]
    first, second = task.attempts
    assert first.interrupted_by == 0
    assert first.died == 11.0
    assert first.exit_reason == "SIGKILL by kill_child fault"
    assert first.last_checkpoint == "step-5"
    assert second.redelivered and second.state == "SUCCESS"
    assert only_nonzero(verdicts.counts) == {"recovered": 1}


def test_latency_without_a_fault_is_measured_from_the_observed_exit() -> None:
    history = [
        dispatch(A, 0, 0.0),
        start(A, 1, 0.1),
        process_exit(A, 1, 0.5, reason="process exited with no fault injected"),
        start(A, 2, 0.8),
        end(A, 2, 1.0),
    ]
    (task,) = check(history).tasks

    assert task.outcome == "recovered"
    assert task.attempts[0].interrupted_by is None
    assert task.redelivery_latencies == [pytest.approx(0.3)]


def test_two_successful_attempts_are_duplicate_executions() -> None:
    # visibility timeout shorter than the task: a second worker runs it while the first is busy
    history = [
        dispatch(A, 0, 0.0),
        start(A, 1, 0.1, worker="w0@x"),
        start(A, 2, 2.1, worker="w1@x", pid=200, redelivered=True),
        end(A, 1, 4.1),
        end(A, 2, 6.1, pid=200),
    ]
    verdicts = check(history)

    (task,) = verdicts.tasks
    assert task.outcome == "duplicate_executions"
    assert task.redelivery_latencies == []  # nothing was interrupted
    assert only_nonzero(verdicts.counts) == {"duplicate_executions": 1}


@pytest.mark.parametrize("location", ["queue:celery", "unacked"])
def test_unfinished_task_still_in_the_broker_is_pending_not_lost(location: str) -> None:
    history = killed(A, 0)
    broker = BrokerState(locations={A: [location], "someone-else": ["queue:celery"]})

    pending = check(history, broker)
    (task,) = pending.tasks
    assert task.outcome == "pending"
    assert task.in_broker == [location]
    assert only_nonzero(pending.counts) == {"pending": 1}

    # the same history with the message gone from the broker: nothing will ever run it again
    assert check(history, BrokerState()).tasks[0].outcome == "lost"


def test_attempt_still_running_at_the_end_is_pending() -> None:
    history = [dispatch(A, 0), start(A, 1, 0.1), checkpoint(A, 1, "step-3", 0.4)]
    verdicts = check(history, BrokerState())

    (task,) = verdicts.tasks
    assert task.outcome == "pending"
    assert task.attempts[0].running
    assert only_nonzero(verdicts.counts) == {"pending": 1}


def test_killed_task_that_is_nowhere_is_lost() -> None:
    verdicts = check(killed(A, 0), BrokerState())

    (task,) = verdicts.tasks
    assert task.outcome == "lost"
    assert task.labels == []  # Celery reported nothing: lost without a trace
    assert not task.attempts[0].running
    assert only_nonzero(verdicts.counts) == {"lost": 1}


def test_dispatched_but_never_started_and_not_in_broker_is_lost() -> None:
    # e.g. a broker restart without persistence wiped the queued message
    verdicts = check([dispatch(A, 0)], BrokerState())

    assert verdicts.tasks[0].outcome == "lost"
    assert verdicts.tasks[0].attempts == []


def test_worker_lost_error_reported_by_the_worker_main_is_failed_and_lost() -> None:
    history = [
        *killed(A, 0, kill_at=1.0),
        failure(A, 11.0, exc_type="WorkerLostError"),  # origin worker: no attempt number
    ]
    verdicts = check(history, BrokerState())

    (task,) = verdicts.tasks
    assert task.outcome == "lost"
    assert task.labels == ["failed"]
    assert task.failures == ["WorkerLostError"]
    assert task.verdicts == ["lost", "failed"]
    assert only_nonzero(verdicts.counts) == {"lost": 1, "failed": 1}


def test_failure_followed_by_a_success_is_not_labelled_failed() -> None:
    history = [
        *killed(A, 0, kill_at=1.0),
        failure(A, 1.1, exc_type="WorkerLostError"),
        start(A, 2, 1.2, redelivered=True),
        end(A, 2, 2.0),
    ]
    (task,) = check(history).tasks

    assert task.outcome == "recovered"
    assert "failed" not in task.labels


def test_exception_raised_by_the_task_is_failed_and_lost() -> None:
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1),
        failure(A, 0.5, exc_type="ValueError", attempt=1),
        end(A, 1, 0.5, state="FAILURE"),
    ]
    verdicts = check(history)

    assert verdicts.tasks[0].verdicts == ["lost", "failed"]
    assert verdicts.tasks[0].failures == ["ValueError"]


def retried_history() -> list[dict]:
    """``self.retry()`` twice, then success: Celery republished the message each time."""
    return [
        dispatch(A, 0, 0.0),
        start(A, 1, 0.1),
        end(A, 1, 0.2, state="RETRY"),
        start(A, 2, 1.2),
        end(A, 2, 1.3, state="RETRY"),
        start(A, 3, 2.3),
        end(A, 3, 2.4),
    ]


def test_retry_then_success_without_interruption_is_ok_and_retried() -> None:
    verdicts = check(retried_history())

    (task,) = verdicts.tasks
    assert task.outcome == "ok"
    assert task.verdicts == ["ok", "retried"]
    assert [a.state for a in task.attempts] == ["RETRY", "RETRY", "SUCCESS"]
    assert task.redelivery_latencies == []  # nothing was interrupted
    assert only_nonzero(verdicts.counts) == {"ok": 1, "retried": 1}


def test_retry_and_an_interrupted_attempt_is_recovered_and_retried() -> None:
    history = [
        dispatch(A, 0, 0.0),
        start(A, 1, 0.1),
        end(A, 1, 0.2, state="RETRY"),
        start(A, 2, 1.0, pid=101),
        fault(0, 1.5, [(A, 2)]),
        process_exit(A, 2, 1.55),
        start(A, 3, 2.0, pid=102, redelivered=True),
        end(A, 3, 2.5, pid=102),
    ]
    verdicts = check(history)

    (task,) = verdicts.tasks
    assert task.verdicts == ["recovered", "retried"]
    assert task.redelivery_latencies == [pytest.approx(0.5)]
    assert only_nonzero(verdicts.counts) == {"recovered": 1, "retried": 1}


def test_attempt_that_never_reported_an_end_makes_a_success_recovered() -> None:
    """The worker lost attempt 1 (no end, no observed death); attempt 2 succeeded."""
    history = [dispatch(A, 0), start(A, 1, 0.1), start(A, 2, 5.0, redelivered=True), end(A, 2, 6)]

    assert check(history).tasks[0].verdicts == ["recovered"]


def test_retries_exhausted_is_lost_failed_and_retried() -> None:
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1),
        end(A, 1, 0.2, state="RETRY"),
        start(A, 2, 1.0),
        failure(A, 1.1, exc_type="ValueError", attempt=2),
        end(A, 2, 1.1, state="FAILURE"),
    ]

    assert check(history).tasks[0].verdicts == ["lost", "failed", "retried"]


def test_retries_are_not_redeliveries_for_the_loop_label() -> None:
    history = [dispatch(A, 0)]
    for number in range(1, 8):  # 6 retries, then success: 7 attempts, 1 delivery
        history += [start(A, number, float(number))]
        history += [end(A, number, number + 0.1, state="RETRY" if number < 7 else "SUCCESS")]
    verdicts = check(history, redelivery_threshold=5)

    assert verdicts.tasks[0].verdicts == ["ok", "retried"]
    assert verdicts.counts["redelivery_loop"] == 0


def poison_history(attempts: int) -> list[dict]:
    """A message that kills its own pool process on every delivery."""
    history = [dispatch(A, 0)]
    for number in range(1, attempts + 1):
        t = float(number)
        history += [
            start(A, number, t, redelivered=number > 1),
            process_exit(A, number, t + 0.1, reason="process exited with no fault injected"),
        ]
    return history


@pytest.mark.parametrize(
    ("attempts", "threshold", "looping"),
    [(6, None, True), (5, None, False), (4, 3, True), (3, 3, False), (2, 1, True)],
)
def test_redelivery_loop_when_attempts_exceed_the_threshold(
    attempts: int, threshold: int | None, looping: bool
) -> None:
    broker = BrokerState(locations={A: ["queue:celery"]})
    kwargs = {} if threshold is None else {"redelivery_threshold": threshold}
    verdicts = check(poison_history(attempts), broker, **kwargs)

    (task,) = verdicts.tasks
    assert task.outcome == "pending"  # never lost: it keeps coming back
    assert ("redelivery_loop" in task.labels) is looping
    assert verdicts.counts["redelivery_loop"] == int(looping)
    assert len(task.redelivery_latencies) == attempts - 1


# --- side effects ------------------------------------------------------------------------


def test_non_idempotent_effect_applied_twice_is_a_duplicate_side_effect() -> None:
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1),
        effect(A, 1, "email:user-0", 1.0),
        start(A, 2, 2.0, redelivered=True),
        effect(A, 2, "email:user-0", 3.0),
        end(A, 1, 3.5),
        end(A, 2, 4.0),
        *completed(B, 1),
        effect(B, 1, "email:user-1", 1.0),
    ]
    verdicts = check(history)

    assert verdicts.counts["duplicate_side_effects"] == 1
    by_key = {e.key: e for e in verdicts.effects}
    assert by_key["email:user-0"].applied == 2
    assert by_key["email:user-0"].duplicated
    assert by_key["email:user-0"].tasks == [A]
    assert not by_key["email:user-1"].duplicated
    assert verdicts.offenders("duplicate_side_effects") == ["effect email:user-0 applied 2x"]


def test_idempotent_effect_attempted_twice_but_applied_once_is_listed_not_counted() -> None:
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1),
        effect(A, 1, "welcome-0", 1.0, applied=True, idempotent=True),
        start(A, 2, 2.0, redelivered=True),
        effect(A, 2, "welcome-0", 3.0, applied=False, idempotent=True),
        end(A, 1, 3.5),
        end(A, 2, 4.0),
    ]
    verdicts = check(history)

    assert verdicts.counts["duplicate_side_effects"] == 0
    (listed,) = verdicts.effects
    assert (listed.key, listed.applied, listed.attempted, listed.duplicated) == (
        "welcome-0",
        1,
        2,
        False,
    )
    assert verdicts.offenders("duplicate_side_effects") == []


# --- locks -------------------------------------------------------------------------------


def test_lock_of_a_killed_owner_never_redelivered_is_stuck() -> None:
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1),
        lock_acquired(A, 1, "doc:doc-0", 0.2),
        fault(0, 0.5, [(A, 1)]),
        process_exit(A, 1, 0.51),
        *completed(B, 1),
        lock_acquired(B, 1, "doc:doc-1", 0.2),
        lock_released(B, 1, "doc:doc-1", 0.9),
    ]
    verdicts = check(history, BrokerState())

    assert verdicts.counts["stuck_locks"] == 1
    (stuck,) = verdicts.locks
    assert (stuck.name, stuck.owner, stuck.owner_attempt, stuck.stuck) == ("doc:doc-0", A, 1, True)
    assert stuck.reason == "owner has no running attempt and no message in the broker"
    assert verdicts.offenders("stuck_locks") == [f"lock doc:doc-0 (owner {A})"]


@pytest.mark.parametrize("location", ["unacked", "queue:celery"])
def test_lock_of_an_owner_pending_in_the_broker_is_held_not_stuck(location: str) -> None:
    """The redelivered attempt of the same task id reclaims the lock (agent ``lock()``): it is
    released when the message comes back, so the finding is the pending task, not the lock."""
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1),
        lock_acquired(A, 1, "doc:doc-0", 0.2),
        fault(0, 0.5, [(A, 1)]),
        process_exit(A, 1, 0.51),
    ]
    verdicts = check(history, BrokerState(locations={A: [location]}))

    assert verdicts.counts["stuck_locks"] == 0 and verdicts.counts["pending"] == 1
    (held,) = verdicts.locks
    assert not held.stuck and held.owner == A
    assert held.reason == (
        f"owner pending in the broker ({location}): its redelivered attempt reclaims the lock"
    )


def test_lock_of_an_owner_only_dead_lettered_is_stuck() -> None:
    """A dead letter is parked: nothing redelivers it, so nothing releases the lock."""
    history = [*killed(A, 0), lock_acquired(A, 1, "doc:doc-0", 0.2)]
    parked = "dead_letter:celery.dlq:delivery_limit:celery"
    verdicts = check(history, BrokerState(locations={A: [parked]}))

    assert verdicts.tasks[0].outcome == "dead_lettered"
    assert verdicts.counts["stuck_locks"] == 1


def test_lock_reclaimed_and_released_by_the_redelivered_attempt_is_not_stuck() -> None:
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1),
        lock_acquired(A, 1, "doc:doc-0", 0.2),
        fault(0, 0.5, [(A, 1)]),
        process_exit(A, 1, 0.51),
        start(A, 2, 0.7, redelivered=True),
        lock_acquired(A, 2, "doc:doc-0", 0.71, reclaimed=True),
        lock_released(A, 2, "doc:doc-0", 1.5),
        end(A, 2, 1.5),
    ]
    verdicts = check(history)

    assert verdicts.counts["stuck_locks"] == 0
    assert verdicts.locks == []
    assert verdicts.tasks[0].outcome == "recovered"


def test_release_by_another_task_does_not_free_the_owners_lock() -> None:
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1),
        lock_acquired(A, 1, "doc:shared", 0.2),
        fault(0, 0.5, [(A, 1)]),
        process_exit(A, 1, 0.51),
        *completed(B, 1),
        lock_released(B, 1, "doc:shared", 0.9),  # not B's lock: the release is a no-op
    ]
    verdicts = check(history, BrokerState())

    assert [lock.owner for lock in verdicts.locks if lock.stuck] == [A]


def test_lock_held_by_a_still_running_attempt_is_not_stuck() -> None:
    history = [dispatch(A, 0), start(A, 1, 0.1), lock_acquired(A, 1, "doc:doc-0", 0.2)]
    verdicts = check(history, BrokerState())

    assert verdicts.counts["stuck_locks"] == 0
    (held,) = verdicts.locks
    assert not held.stuck
    assert held.reason == "owner still running"
    assert verdicts.offenders("stuck_locks") == []


def test_held_locks_snapshot_is_what_counts_at_the_end() -> None:
    released_in_history = [
        *killed(A, 0),
        lock_acquired(A, 1, "doc:doc-0", 0.2),
        lock_released(A, 1, "doc:doc-0", 0.3),
    ]
    # the history says released, but Redis still has the key: stuck
    verdicts = check(released_in_history, BrokerState(), held_locks={"doc:doc-0": A})
    assert verdicts.counts["stuck_locks"] == 1
    assert verdicts.locks[0].owner == A

    held_in_history = [*killed(A, 0), lock_acquired(A, 1, "doc:doc-0", 0.2)]
    assert check(held_in_history, BrokerState()).counts["stuck_locks"] == 1
    # ... but the live snapshot says nobody holds it (e.g. an expiry freed it): not stuck
    assert check(held_in_history, BrokerState(), held_locks={}).counts["stuck_locks"] == 0


def test_held_locks_snapshot_owned_by_a_running_task_is_not_stuck() -> None:
    history = [dispatch(A, 0), start(A, 1, 0.1), *killed(B, 1)]
    verdicts = check(history, BrokerState(), held_locks={"l1": A, "l2": B, "l3": "stranger"})

    stuck = {lock.name: lock.stuck for lock in verdicts.locks}
    assert stuck == {"l1": False, "l2": True, "l3": True}
    assert verdicts.counts["stuck_locks"] == 2


# --- unexpected, counts, offenders ------------------------------------------------------


def test_attempt_of_a_task_never_dispatched_is_unexpected() -> None:
    history = [*completed(A, 0), start("ghost", 1, 0.3, task="other.task"), end("ghost", 1, 0.4)]
    verdicts = check(history)

    assert verdicts.counts["unexpected"] == 1
    assert verdicts.unexpected == ["ghost"]
    assert verdicts.offenders("unexpected") == ["ghost"]
    # the stray execution is not one of ours: outcomes cover dispatched tasks only
    assert [t.task_id for t in verdicts.tasks] == [A]
    assert sum(verdicts.counts[o] for o in OUTCOMES) == 1


def test_counts_name_every_verdict_even_for_an_empty_history() -> None:
    verdicts = check([])

    assert list(verdicts.counts) == list(VERDICTS)
    assert set(verdicts.counts.values()) == {0}


def mixed_history() -> list[dict]:
    return [
        *completed(A, 0),
        *killed(B, 1),
        dispatch(C, 2),
        start(C, 1, 0.1),
        end(C, 1, 0.5),
        start(C, 2, 0.6),
        end(C, 2, 0.9),
    ]


def test_every_dispatched_task_gets_exactly_one_outcome() -> None:
    verdicts = check(mixed_history(), BrokerState())

    assert list(verdicts.counts) == list(VERDICTS)
    assert sum(verdicts.counts[o] for o in OUTCOMES) == 3
    for task in verdicts.tasks:
        assert task.outcome in OUTCOMES
        assert set(task.labels) <= set(LABELS)
    assert [t.index for t in verdicts.tasks] == [0, 1, 2]


def test_offenders_name_the_tasks() -> None:
    verdicts = check(mixed_history(), BrokerState())

    assert verdicts.offenders("ok") == [f"{TASK}[{A}]"]
    assert verdicts.offenders("lost") == [f"{TASK}[{B}]"]
    assert verdicts.offenders("duplicate_executions") == [f"{TASK}[{C}]"]
    assert verdicts.offenders("recovered") == []
    assert verdicts.offenders("failed") == []


def test_as_dict_is_json_serialisable_and_carries_the_verdicts() -> None:
    document = json.loads(json.dumps(check(mixed_history(), BrokerState()).as_dict()))

    assert document["verdicts"]["lost"] == 1
    assert [t["verdicts"] for t in document["tasks"]] == [
        ["ok"],
        ["lost"],
        ["duplicate_executions"],
    ]


def test_no_negative_latency_when_the_next_attempt_started_before_the_kill() -> None:
    # attempt 1 is paused; the visibility timeout hands the message to another worker (attempt
    # 2 at t=5); only then does a kill_worker fault hit attempt 1 (t=8). Nothing was redelivered
    # *after* the interruption, so there is no redelivery latency to report (certainly not -3 s).
    history = [
        dispatch(A, 0),
        start(A, 1, 0.1, worker="w0@x"),
        start(A, 2, 5.0, worker="w1@x", pid=200, redelivered=True),
        fault(0, 8.0, [(A, 1)], kind="kill_worker"),
        process_exit(A, 1, 8.01, reason="SIGKILL by kill_worker fault (whole worker)"),
        end(A, 2, 9.0, pid=200),
    ]
    (task,) = check(history).tasks

    assert task.outcome == "recovered"
    assert all(latency >= 0 for latency in task.redelivery_latencies), task.redelivery_latencies


# --- worker_crashes --------------------------------------------------------------------

UNRECOVERABLE = [
    "[2026-11-21 23:00:00,000: CRITICAL/MainProcess] Unrecoverable error: ConnectionError()",
    "Traceback (most recent call last):",
    "redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379.",
]


def test_a_worker_exit_no_fault_caused_is_a_crash() -> None:
    history = [*completed(A, 0), worker_exit(5.0, exitcode=1, log_tail=UNRECOVERABLE)]
    verdicts = check(history)

    assert verdicts.counts["worker_crashes"] == 1
    (crash,) = verdicts.crashes
    assert (crash.worker, crash.pid, crash.exitcode, crash.signal) == (WORKER, 50, 1, None)
    assert crash.reason_code == "exit:1"
    assert verdicts.offenders("worker_crashes") == [
        f"worker {WORKER} pid 50 (exited with status 1 with no fault injected): {UNRECOVERABLE[-1]}"
    ]
    assert json.loads(json.dumps(verdicts.as_dict()))["worker_crashes"][0]["log_tail"] == (
        UNRECOVERABLE
    )


def test_a_worker_killed_by_a_signal_no_fault_sent_is_a_crash() -> None:
    (crash,) = check([worker_exit(1.0, signal=11)]).crashes
    assert crash.reason_code == "signal:11"
    assert "SIGSEGV" in crash.reason


@pytest.mark.parametrize(
    ("kind", "blame"),
    [
        ("kill_worker", "worker"),
        ("restart_worker", "worker"),
        ("terminate", "worker"),
        ("quit", "worker"),
        ("kill_child", "worker"),  # a pool without child processes: the whole worker
        ("oom", None),  # the kernel picks the process in the worker's cgroup
    ],
)
def test_an_exit_after_a_killing_fault_on_that_worker_is_not_a_crash(
    kind: str, blame: str | None
) -> None:
    killing = fault(0, 1.0, hits=[], kind=kind, worker=WORKER, blame=blame)
    history = [killing, worker_exit(1.5, signal=9)]
    verdicts = check(history)
    assert verdicts.counts["worker_crashes"] == 0
    assert verdicts.offenders("worker_crashes") == []


@pytest.mark.parametrize(
    "killing_fault",
    [
        fault(0, 1.0, hits=[], kind="kill_worker", worker="w1@chaos-test", blame="worker"),
        fault(0, 1.0, hits=[], kind="restart_broker", worker=None),  # not a killing kind
        fault(0, 1.0, hits=[], kind="kill_child", worker=WORKER, blame="pid"),  # a child only
        fault(0, 1.0, hits=[], kind="pause", worker=WORKER),
        {**fault(0, 1.0, hits=[], kind="kill_worker", worker=WORKER), "status": "missed"},
        fault(0, 3.0, hits=[], kind="kill_worker", worker=WORKER, blame="worker"),  # too late
    ],
    ids=["other-worker", "restart_broker", "kill_child", "pause", "skipped", "after-the-exit"],
)
def test_an_exit_no_killing_fault_explains_is_a_crash(killing_fault: dict) -> None:
    exit_event = worker_exit(2.0, exitcode=1)
    history = sorted([exit_event, killing_fault], key=lambda e: e["ts"])  # history order
    assert check(history).counts["worker_crashes"] == 1


def test_worker_crashes_is_a_verdict_scenarios_may_expect() -> None:
    assert "worker_crashes" in VERDICTS
    assert check(completed(A, 0)).counts["worker_crashes"] == 0
    scenario = parse_scenario(
        {"name": "s", "description": "d", "workload": [{"task": TASK}],
         "expect": {"worker_crashes": 0}},
        "s.yaml",
    )  # fmt: skip
    assert scenario.expect == {"worker_crashes": 0}


def test_an_attempt_keeps_the_exit_reason_code_beside_the_text() -> None:
    exit_event = {**process_exit(A, 1, 1.5), "reason_code": "fault_sigkill"}
    history = [dispatch(A, 0), start(A, 1, 1.0), exit_event]
    (attempt,) = check(history).tasks[0].attempts
    assert attempt.exit_reason == "SIGKILL by kill_child fault"
    assert attempt.exit_reason_code == "fault_sigkill"
