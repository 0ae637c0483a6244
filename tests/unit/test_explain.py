"""The explanation lines (pure): each finding says which settings and timings caused it and what
would change it; the restore sweep's figure follows Kombu's own rules."""

from __future__ import annotations

import pytest
from celery_chaos.core import history as h
from celery_chaos.core.broker_state import BrokerState
from celery_chaos.core.checker import check
from celery_chaos.core.explain import explain, run_settings
from celery_chaos.core.explain_facts import RunSettings, sweep_of
from celery_chaos.core.scenario import parse_scenario

from tests.unit.histories import (
    WORKER,
    dispatch,
    end,
    event,
    fault,
    process_exit,
    start,
)

LATE = {"task_acks_late": True, "task_reject_on_worker_lost": True}
REPLACEMENT = "w1@chaos-test"


def killed_worker_history(run_end: float, replacement_ready: float = 1.1) -> list[dict]:
    """kill_worker at 0.6 s while task a (delivered at 0.1 s) ran; a replacement is ready at
    ``replacement_ready``; the run ends at ``run_end``."""
    return [
        event(h.WORKER_READY, 0.0, worker=WORKER),
        dispatch("a", 0, ts=0.05),
        start("a", 1, 0.1),
        fault(0, 0.6, [("a", 1)], kind="kill_worker", worker=WORKER, blame="worker", offset=0.6),
        event(h.WORKER_EXIT, 0.65, worker=WORKER),
        event(h.WORKER_READY, replacement_ready, worker=REPLACEMENT),
        event(h.RUN_END, run_end, reason="deadline"),
    ]


def settings(transport: dict | None = None, **changes) -> RunSettings:
    celery = LATE | ({"broker_transport_options": transport} if transport else {})
    return RunSettings(celery=celery, timeout=90.0, **changes)


def lines_for(history: list[dict], settings: RunSettings, broker: BrokerState | None = None):
    return explain(check(history, broker), history, settings)


UNACKED = BrokerState(locations={"a": ["unacked"]})


def test_the_issue_case_says_the_restore_sweep_outlasted_the_run() -> None:
    """kill_worker, visibility_timeout 15, timeout 90 s: the message became restorable at 15.1 s
    but the replacement's next sweep (Kombu's default 100 s cadence) was due at 101.1 s."""
    history = killed_worker_history(run_end=90.0)
    (line,) = lines_for(history, settings({"visibility_timeout": 15}), UNACKED)
    assert line.startswith("pending #0 sample_tasks.tasks.work[a]: ")
    for words in (
        "Redis's unacked set",
        "attempt 1 on w0@chaos-test died at 0.6s (fault 0 kill_worker at 0.6s)",
        "task_acks_late=True nobody was left to acknowledge or reject",
        "visibility_timeout=15s",
        "Kombu's restore sweep every 100s (unacked_restore_interval=10s x"
        " unacked_restore_throttle=10, Kombu defaults)",
        "restorable from 15.1s",
        f"({REPLACEMENT}, consuming since 1.1s) was due at 101.1s",
        "the run ended at 90.0s (deadline, timeout 90s)",
        "the restore sweep outlasted the run (a run longer than 101.1s would have seen it",
        "would change it:",
    ):
        assert words in line


def test_a_run_ending_before_the_visibility_timeout_says_so() -> None:
    (line,) = lines_for(killed_worker_history(run_end=10.0), settings(), UNACKED)
    assert "visibility_timeout=3600s (Kombu default)" in line
    assert "before the visibility timeout had passed (at 3600.1s)" in line


def test_a_sweep_due_before_the_end_is_not_blamed() -> None:
    transport = {
        "visibility_timeout": 15,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    notes = ["Kombu's unacked_mutex is held for another 287s"]
    broker = BrokerState(locations={"a": ["unacked"]}, notes=notes)
    (line,) = lines_for(killed_worker_history(run_end=40.0), settings(transport), broker)
    assert "every 1s (unacked_restore_interval=1s x unacked_restore_throttle=1)" in line
    assert "was due at 15.1s, before the run ended" in line
    assert "unacked_mutex is held" in line and "outlasted" not in line


def test_old_kombu_ignores_the_sweep_options() -> None:
    transport = {
        "visibility_timeout": 15,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    old = settings(transport, kombu="5.6.2")
    (line,) = lines_for(killed_worker_history(run_end=45.0), old, UNACKED)
    assert "every 100s" in line and "Kombu before 5.7 ignores both options" in line
    assert "the restore sweep outlasted the run" in line


@pytest.mark.parametrize(
    ("transport", "period"),
    [
        ({}, 100.0),
        ({"unacked_restore_interval": 2}, 20.0),
        ({"unacked_restore_interval": 0, "unacked_restore_throttle": 0}, 10.0),
        ({"unacked_restore_interval": 1, "unacked_restore_throttle": 1}, 1.0),
    ],
)
def test_the_sweep_period_is_interval_times_throttle(transport: dict, period: float) -> None:
    assert sweep_of(transport, "5.7.0").period == period


def test_a_first_sweep_between_launch_and_ready_may_have_come_too_early() -> None:
    """Seen in CI under load: the replacement was launched at 1.1 s and ready at 3.3 s, the
    message restorable from 3.1 s. Kombu's first sweep runs when the consumer's poller starts,
    before ``worker_ready``, so it may have come before 3.1 s: no sweep was surely due before
    the end, and the message still there says the run was too short, not that a sweep failed."""
    history = killed_worker_history(run_end=12.0, replacement_ready=3.3)
    history.insert(-2, event(h.WORKER_STARTED, 1.1, worker=REPLACEMENT))
    (line,) = lines_for(history, settings({"visibility_timeout": 3}), UNACKED)
    for words in (
        "restorable from 3.1s",
        f"({REPLACEMENT}, consuming since 3.3s) (its first sweep ran between its launch at 1.1s"
        " and its worker_ready at 3.3s) was due between 3.1s and 103.1s",
        "so that first sweep came before it was restorable",
        "the restore sweep outlasted the run (a run longer than 103.1s",
    ):
        assert words in line, line
    assert "yet the message stayed" not in line


def test_a_worker_launched_after_the_message_was_restorable_sweeps_it_at_start() -> None:
    history = killed_worker_history(run_end=12.0, replacement_ready=5.0)
    history.insert(-2, event(h.WORKER_STARTED, 4.0, worker=REPLACEMENT))
    (line,) = lines_for(history, settings({"visibility_timeout": 3}), UNACKED)
    assert f"a sweep of {REPLACEMENT} was due at 5.0s, before the run ended" in line, line
    assert "yet the message stayed" in line


@pytest.mark.parametrize(
    ("launched", "ready", "moment", "window"),
    [
        (4.0, 5.0, 3.0, (4.0, 5.0)),  # launched after: the first sweep restores it
        (1.0, 1.0, 15.0, (101.0, 101.0)),  # no launch recorded: as before
        (1.0, 3.0, 2.0, (2.0, 102.0)),  # restorable inside the window
        (1.0, 3.0, 102.0, (102.0, 202.0)),  # 102 - 100 = 2 lies in the window
        (1.0, 3.0, 202.0, (202.0, 302.0)),  # so does 202 - 2 x 100
        (1.0, 3.0, 110.0, (201.0, 203.0)),  # 110 - 100 = 10 does not: sweeps at 101-103, 201-203
    ],
)
def test_the_first_sweep_after_a_moment_lies_in_a_window(
    launched: float, ready: float, moment: float, window: tuple[float, float]
) -> None:
    assert sweep_of({}).due_window(launched, ready, moment) == pytest.approx(window)


def test_a_sweep_comes_at_a_workers_start_and_every_period_after() -> None:
    sweep = sweep_of({})
    assert sweep.next_after(1.0, 0.5) == 1.0
    assert sweep.next_after(1.0, 1.0) == 1.0
    assert sweep.next_after(1.0, 15.0) == 101.0
    assert sweep.next_after(1.0, 101.0) == 101.0


def test_green_pools_restore_only_on_an_empty_poll() -> None:
    green = settings({"visibility_timeout": 2}, pool="gevent")
    (line,) = lines_for(killed_worker_history(run_end=25.0), green, UNACKED)
    assert "gevent worker consumes with Celery's synchronous loop" in line
    assert "polling_interval" in line


def test_a_kill_child_on_a_threads_pool_took_the_whole_worker() -> None:
    """On solo/threads (not only gevent/eventlet) kill_child kills the worker itself
    (faults.base.WHOLE_WORKER_POOLS): nobody is left to ack or reject the message."""
    history = [
        event(h.WORKER_READY, 0.0, worker=WORKER),
        dispatch("a", 0, ts=0.05),
        start("a", 1, 0.1),
        fault(0, 0.6, [("a", 1)], worker=WORKER, blame="worker", offset=0.6),
        process_exit("a", 1, 0.62),
        event(h.WORKER_EXIT, 0.65, worker=WORKER),
        event(h.RUN_END, 5.0, reason="deadline"),
    ]
    (line,) = lines_for(history, settings(pool="threads"), UNACKED)
    assert "taking the whole worker with it" in line


def test_whole_worker_kills_come_from_the_fault_event_as_for_worker_crashes() -> None:
    """One source (crashes.kills_whole_worker): a fault whose event blames the whole worker
    took it, whatever its kind and pool, even when the worker's exit was not seen."""
    history = [
        event(h.WORKER_READY, 0.0, worker=WORKER),
        dispatch("a", 0, ts=0.05),
        start("a", 1, 0.1),
        fault(0, 0.6, [("a", 1)], worker=WORKER, blame="worker", offset=0.6),
        process_exit("a", 1, 0.62),
        event(h.RUN_END, 5.0, reason="deadline"),
    ]
    (line,) = lines_for(history, settings(), UNACKED)
    assert "taking the whole worker with it" in line and "(alive)" not in line


def test_a_prefetched_task_names_the_prefetch_multiplier() -> None:
    history = killed_worker_history(run_end=20.0)
    history.insert(2, dispatch("b", 1, ts=0.06))
    broker = BrokerState(locations={"a": ["unacked"], "b": ["unacked"]})
    lines = lines_for(history, settings(), broker)
    (prefetched,) = [line for line in lines if "[b]" in line]
    assert "prefetched (never started)" in prefetched
    assert "worker_prefetch_multiplier=4 (Celery default)" in prefetched


def test_rabbitmq_unacked_on_a_live_connection() -> None:
    rabbit = settings(broker="rabbitmq")
    (line,) = lines_for(killed_worker_history(run_end=20.0), rabbit, UNACKED)
    assert "unacknowledged on a live connection" in line and "Kombu" not in line


def test_a_still_running_attempt_names_the_time_limit() -> None:
    history = [
        dispatch("a", 0, ts=0.0),
        start("a", 1, 0.1),
        event(h.RUN_END, 30.0, reason="deadline"),
    ]
    (line,) = lines_for(history, settings())
    assert "attempt 1 on w0@chaos-test (started at 0.1s) was still running" in line
    assert "task_time_limit=None (Celery default): nothing bounds" in line


def test_an_earlier_attempt_still_running_is_named_when_the_last_died() -> None:
    """Pending because attempt 1 still runs (checker: any running attempt), although attempt 2,
    started on another worker, died: the line names attempt 1, never 'it never ran'."""
    history = [
        dispatch("a", 0, ts=0.0),
        start("a", 1, 0.1),
        start("a", 2, 1.0, pid=200, worker=REPLACEMENT),
        event(h.PROCESS_EXIT, 1.5, task_id="a", attempt=2, pid=200, worker=REPLACEMENT),
        event(h.RUN_END, 3.0, reason="deadline"),
    ]
    (line,) = lines_for(history, settings())
    assert "attempt 1 on w0@chaos-test (started at 0.1s) was still running" in line
    assert "never ran" not in line


def child_killed(failures: list[str]) -> list[dict]:
    history = [
        dispatch("a", 0, ts=0.0),
        start("a", 1, 0.1),
        fault(0, 0.5, [("a", 1)], offset=0.5),
        process_exit("a", 1, 0.55),
    ]
    history += [event(h.TASK_FAILURE, 0.6, task_id="a", exc_type=exc) for exc in failures]
    return history + [event(h.RUN_END, 2.0, reason="quiescent")]


def test_lost_with_early_acks() -> None:
    (line,) = lines_for(child_killed(["WorkerLostError"]), RunSettings())  # failed: no line
    assert line.startswith("lost #0 ")
    assert "died at 0.5s (fault 0 kill_child at 0.5s)" in line
    assert "task_acks_late=False (Celery default) the message was acknowledged before" in line
    assert "task_acks_late=True with task_reject_on_worker_lost=True" in line


def test_lost_with_acks_late_but_no_reject() -> None:
    late_only = RunSettings(celery={"task_acks_late": True})
    (line,) = lines_for(child_killed(["WorkerLostError"]), late_only)
    assert "task_reject_on_worker_lost=None (Celery default) the worker acknowledged" in line
    assert "would change it: task_reject_on_worker_lost=True" in line


def restarted_broker_history() -> list[dict]:
    """Task a sent at 0 s, the broker restarted at 0.5 s, the run over at 3 s."""
    return [
        dispatch("a", 0, ts=0.0),
        fault(0, 0.5, [], kind="restart_broker", offset=0.5),
        event(h.RUN_END, 3.0, reason="quiescent"),
    ]


def test_lost_after_a_broker_restart_without_persistence() -> None:
    history = restarted_broker_history()
    (line,) = lines_for(history, settings())
    assert "fault 0 restart_broker at 0.5s restarted the redis broker (persistence: none)" in line
    assert "broker persistence: aof" in line


def test_a_persistent_message_lost_in_a_rabbitmq_crash_names_publisher_confirms() -> None:
    """Seen once in CI (docker RabbitMQ, Celery's durable queue and persistent messages): three
    messages gone after a SIGKILL about a second after they were sent. "Durable queues" would
    change nothing there; what would is a publisher that waits for RabbitMQ's confirm."""
    history = restarted_broker_history()
    (line,) = lines_for(history, RunSettings(broker="rabbitmq"))
    assert "fault 0 restart_broker at 0.5s restarted the rabbitmq broker, and the message" in line
    assert "task_default_delivery_mode=2 (Celery default) makes it persistent" in line
    assert "would change it: broker_transport_options confirm_publish=True" in line


def test_a_transient_message_lost_in_a_rabbitmq_restart_names_the_delivery_mode() -> None:
    history = restarted_broker_history()
    transient = RunSettings(celery={"task_default_delivery_mode": "transient"}, broker="rabbitmq")
    (line,) = lines_for(history, transient)
    assert "with task_default_delivery_mode='transient' RabbitMQ keeps no message" in line
    assert "would change it: task_default_delivery_mode='persistent'" in line


def test_a_message_of_a_transient_queue_lost_in_a_rabbitmq_restart_names_the_queue() -> None:
    history = restarted_broker_history()
    queues = {"task_queues": {"celery": {"durable": False}}}
    (line,) = lines_for(history, RunSettings(celery=queues, broker="rabbitmq"))
    assert "declares a queue transient (durable: false)" in line
    assert "would change it: durable queues" in line


def test_a_broker_restart_before_the_dispatch_is_not_blamed() -> None:
    """A storm restarts the broker, then a task sent later is killed with early acks: the line
    names the kill and the acks mode, not a restart that came before its message existed."""
    history = [
        fault(0, 0.5, [], kind="restart_broker", offset=0.5),
        dispatch("a", 0, ts=1.0),
        start("a", 1, 1.1),
        fault(1, 1.5, [("a", 1)], offset=1.5),
        process_exit("a", 1, 1.55),
        event(h.TASK_FAILURE, 1.6, task_id="a", exc_type="WorkerLostError"),
        event(h.RUN_END, 3.0, reason="quiescent"),
    ]
    (line,) = lines_for(history, RunSettings())
    assert "restarted the redis broker" not in line
    assert "the message was acknowledged before the task ran" in line


def test_an_apps_own_settings_are_never_claimed_as_celery_defaults() -> None:
    unknown = RunSettings(defaults_known=False)
    (line,) = lines_for(child_killed([]), unknown)
    assert "task_acks_late (your app's value)" in line and "Celery default" not in line


def test_an_apps_own_settings_are_shown_as_its_workers_reported_them() -> None:
    from celery_chaos.core.explain import reported_settings

    ready = event(h.WORKER_READY, 0.1, worker="w0", settings={"task_acks_late": True})
    assert reported_settings([ready]) == {"task_acks_late": True}
    reported = RunSettings(defaults_known=False, reported=reported_settings([ready]))
    assert reported.value("task_acks_late") is True and reported.known("task_acks_late")
    assert reported.show("task_acks_late") == "task_acks_late=True (your app's value)"
    assert reported.show("task_time_limit") == "task_time_limit (your app's value)"
    sample = RunSettings(reported={"task_acks_late": True})  # the sample app: defaults known
    assert sample.show("task_acks_late") == "task_acks_late=False (Celery default)"


def test_duplicate_execution_by_a_short_visibility_timeout() -> None:
    """As measured on scenario 05: each attempt ran 4 s with visibility_timeout 2 s; the
    restored message waited for the other (busy) worker, so the attempts do not overlap."""
    history = [dispatch("a", 0, ts=0.0)]
    for n, worker in ((1, WORKER), (2, REPLACEMENT), (3, REPLACEMENT)):
        history += [start("a", n, 4.0 * n - 3.9, worker=worker), end("a", n, 4.0 * n + 0.1)]
    history.append(event(h.RUN_END, 13.0, reason="quiescent"))
    (line,) = lines_for(history, settings({"visibility_timeout": 2}))
    assert line.startswith("duplicate_executions #0 ")
    assert "it completed 3 times (3 attempts): attempt 1 ran 4.0s, longer than" in line
    assert "visibility_timeout=2s" in line and "Kombu's restore sweep every 100s" in line
    assert "attempt 2 (started at 4.1s) ran it again" in line
    assert "task_time_limit below it" in line


def test_a_duplicate_within_the_visibility_timeout_is_a_lost_ack() -> None:
    history = [dispatch("a", 0, ts=0.0), start("a", 1, 0.1), end("a", 1, 0.5)]
    history += [start("a", 2, 1.0), end("a", 2, 1.5), event(h.RUN_END, 3.0, reason="quiescent")]
    (line,) = lines_for(history, settings({"visibility_timeout": 2}))
    assert "its acknowledgement never reached the broker" in line


def test_an_attempt_that_died_before_the_next_began_is_no_overlap() -> None:
    """A partition in the run, but attempt 1 died before attempt 2 started: no attempt was cut
    off while another ran, so the line must not say 'the first run went on'."""
    history = [
        dispatch("a", 0, ts=0.0),
        fault(0, 0.2, [], kind="partition", worker=WORKER, offset=0.2),
        start("a", 1, 0.1),
        process_exit("a", 1, 0.5, reason="SIGSEGV"),
        start("a", 2, 1.0),
        end("a", 2, 1.2),
        start("a", 3, 1.5),
        end("a", 3, 1.7),
        event(h.RUN_END, 3.0, reason="quiescent"),
    ]
    (line,) = lines_for(history, settings({"visibility_timeout": 2}))
    assert line.startswith("duplicate_executions #0 ")
    assert "the first run went on" not in line


def test_a_message_requeued_to_a_live_worker_is_not_blamed_on_the_timeout() -> None:
    """Measured on scenario 08 (poison): the pool process died, reject_on_worker_lost put the
    message back, the same live worker took it again and the run ended before it started it."""
    history = [
        event(h.WORKER_READY, 0.0, worker=WORKER),
        dispatch("a", 0, ts=0.05),
        start("a", 1, 0.1),
        process_exit("a", 1, 0.5, reason="died of SIGKILL (signal 9) with no fault injected"),
        event(h.RUN_END, 2.0, reason="deadline"),
    ]
    (line,) = lines_for(history, settings(), UNACKED)
    assert "held by a live worker" in line and f"{WORKER} (alive) took it again" in line
    assert "visibility timeout matters only if that worker dies too" in line
    reserved = [event(h.WORKER_READY, 0.0, worker=WORKER), dispatch("a", 0, ts=0.05)]
    reserved.append(event(h.RUN_END, 2.0, reason="deadline"))
    (line,) = lines_for(reserved, settings(), UNACKED)
    assert "reserved (worker_prefetch_multiplier=4 (Celery default)) and not yet started" in line


def test_a_countdown_not_due_at_the_deadline_is_held_not_prefetched() -> None:
    """A countdown task (dispatch ``due`` at 50 s) reserved by a live worker when the run hit its
    30 s timeout: the line names the due time, not the prefetch multiplier."""
    history = [
        event(h.WORKER_READY, 0.0, worker=WORKER),
        {**dispatch("a", 0, ts=0.0), "due": 50.0},
        event(h.RUN_END, 30.0, reason="deadline"),
    ]
    (line,) = lines_for(history, settings(), UNACKED)
    assert "its countdown/ETA was due only at 50.0s, after the run ended at 30.0s" in line
    assert "prefetch" not in line


def test_a_redelivery_loop_names_acks_and_threshold() -> None:
    history = [dispatch("a", 0, ts=0.0)]
    for n in range(1, 8):
        history += [start("a", n, n), process_exit("a", n, n + 0.5, reason="SIGSEGV")]
    history.append(event(h.RUN_END, 9.0, reason="deadline"))
    lines = lines_for(history, settings(), BrokerState(locations={"a": ["queue"]}))
    (loop,) = [line for line in lines if line.startswith("redelivery_loop")]
    assert "delivered 7 times, more than redelivery_threshold 5" in loop
    assert "(SIGSEGV)" in loop and "task_reject_on_worker_lost=True" in loop


def test_a_stuck_lock_names_its_owner_and_fate() -> None:
    history = child_killed(["WorkerLostError"])
    history.insert(2, event(h.LOCK_ACQUIRED, 0.2, task_id="a", attempt=1, name="doc"))
    verdicts = check(history)
    assert [(lock.name, lock.stuck) for lock in verdicts.locks] == [("doc", True)]
    lines = explain(verdicts, history, RunSettings())
    (stuck,) = [line for line in lines if line.startswith("stuck_locks")]
    assert "lock doc: held by #0 sample_tasks.tasks.work[a], whose attempt 1" in stuck
    assert "the task is lost, so nothing will release it" in stuck


def test_no_finding_no_line_and_expectations_are_not_read() -> None:
    history = [dispatch("a", 0, ts=0.0), start("a", 1, 0.1), end("a", 1, 0.2)]
    assert lines_for(history, settings()) == []
    scenario = parse_scenario(
        {
            "name": "x",
            "description": "x",
            "celery": {"task_acks_late": True},
            "workload": [{"task": "t"}],
            "expect": {"lost": 0},
        },
        "x.yaml",
    )
    read = run_settings(scenario, {"kombu": "5.7.0"})
    assert read.celery == {"task_acks_late": True} and read.kombu == "5.7.0"
    assert not hasattr(read, "expect")


def test_every_report_carries_the_lines(tmp_path) -> None:
    """Console footer, result.json, junit.xml (system-out), summary.md and the pytest failure
    text all carry the same lines, computed once from the run's history."""
    import json
    from xml.etree import ElementTree as ET

    from celery_chaos.core.conclusion import FAILED, ScenarioResult, SuiteResult
    from celery_chaos.report import files
    from celery_chaos.report.messages import scenario_failure

    data = {
        "name": "cadence",
        "description": "issue 17's case",
        "celery": LATE | {"broker_transport_options": {"visibility_timeout": 15}},
        "workload": [{"task": "t"}],
        "timeout": 90,
        "expect": {"recovered": 1},
    }
    history = killed_worker_history(run_end=90.0)
    result = ScenarioResult(
        parse_scenario(data, "x.yaml"), FAILED, 1, "local", tmp_path / "cadence"
    )
    result.verdicts = check(history, UNACKED)
    files.write_scenario(result, history)
    (line,) = result.explanations
    assert "the restore sweep outlasted the run" in line
    assert json.loads((tmp_path / "cadence" / "result.json").read_text())["explanations"] == [line]
    assert f"   explained: {line}" in files.scenario_footer(result)
    suite = SuiteResult([result], tmp_path)
    case = ET.fromstring(files.junit_xml(suite)).find("testcase")
    assert case is not None and case.findtext("system-out") == line
    assert f"- {line}" in files.markdown_summary(suite)
    assert f"explained: {line}" in scenario_failure(result, "replay")


def test_a_held_retry_says_what_the_history_shows() -> None:
    """A RETRY whose countdown message sits unacked: with no worker exit in the history the line
    claims no death; with one it names the worker and when, against the retry's due time."""
    history = [
        event(h.WORKER_READY, 0.0, worker=WORKER),
        dispatch("a", 0, ts=0.0),
        start("a", 1, 0.1),
        {**end("a", 1, 0.2, state="RETRY"), "due": 5.0},
        event(h.RUN_END, 30.0, reason="deadline"),
    ]
    (line,) = lines_for(history, settings(), UNACKED)
    assert "died" not in line and "no worker exited in the run" in line
    assert "it was due at 5.0s, before the run ended at 30.0s" in line
    history.insert(4, event(h.WORKER_EXIT, 3.0, worker=WORKER))
    (line,) = lines_for(history, settings(), UNACKED)
    assert f"workers that exited: {WORKER} at 3.0s (before it was due)" in line


def test_a_lock_of_a_pending_owner_gets_no_stuck_line() -> None:
    """The checker's rule: a lock whose owner is pending in the broker is held, not stuck (its
    redelivered attempt reclaims it), so the only line is the owner's pending one."""
    history = [
        event(h.WORKER_READY, 0.0, worker=WORKER),
        dispatch("a", 0, ts=0.0),
        start("a", 1, 0.1),
        event(h.LOCK_ACQUIRED, 0.2, task_id="a", attempt=1, name="doc"),
        fault(0, 0.5, [("a", 1)], worker=WORKER, offset=0.5),
        process_exit("a", 1, 0.51),
        event(h.RUN_END, 2.0, reason="deadline"),
    ]
    lines = lines_for(history, settings(), UNACKED)
    assert [line.split(" ", 1)[0] for line in lines] == ["pending"]
