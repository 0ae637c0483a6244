"""The exit-reason vocabulary: fixed codes tools can rely on, each with human text beside it."""

from __future__ import annotations

import pytest
from celery_chaos.core import exit_reasons as reasons
from celery_chaos.core import history as h
from celery_chaos.core.exit_reasons import ExitReason
from celery_chaos.run.watcher import Watcher

from tests.unit.fakes import Recorder, WatchedPlacement


@pytest.mark.parametrize(
    ("returncode", "code", "text"),
    [
        (-11, "signal:11", "died of SIGSEGV (signal 11) with no fault injected"),
        (-9, "signal:9", "died of SIGKILL (signal 9) with no fault injected"),
        (1, "exit:1", "exited with status 1 with no fault injected"),
        (0, "exit:0", "exited with status 0 with no fault injected"),
    ],
)
def test_a_returncode_becomes_a_code_and_its_text(returncode: int, code: str, text: str) -> None:
    assert reasons.by_returncode(returncode) == code
    assert reasons.is_code(code)
    assert reasons.describe(code) == text


def test_every_fixed_code_has_text_and_is_a_code() -> None:
    for reason in ExitReason:
        assert reasons.is_code(reason.value)
        assert reasons.describe(reason.value) == reasons.TEXT[reason]
    assert {r.value for r in ExitReason} == {
        "oom_kill", "fault_sigkill", "fault_sigterm", "fault_sigquit", "time_limit", "worker_lost",
        "shutdown_hung",
    }  # fmt: skip


def test_fault_signals_map_to_fault_codes() -> None:
    assert reasons.by_fault_signal("SIGKILL") == "fault_sigkill"
    assert reasons.by_fault_signal("SIGTERM") == "fault_sigterm"
    assert reasons.by_fault_signal("SIGQUIT") == "fault_sigquit"


@pytest.mark.parametrize("text", [None, "", "worker exited with code 1", "signal:", "exit:x"])
def test_free_text_is_not_a_code(text: str | None) -> None:
    assert not reasons.is_code(text)


def test_the_explaining_tail_starts_at_the_error_that_ended_the_process() -> None:
    log = [
        "[INFO/MainProcess] celery@w0 ready.",
        "[INFO/MainProcess] Task sample_tasks.tasks.work[abc] received",
        "[CRITICAL/MainProcess] Unrecoverable error: ConnectionError('Error 111')",
        "Traceback (most recent call last):",
        '  File "consumer.py", line 1, in start',
        "    blueprint.start(self)",
        "redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379.",
        "",
    ]
    assert reasons.explaining_tail(log) == log[2:7]


def test_without_an_error_line_the_tail_is_the_last_lines() -> None:
    log = [f"line {i}" for i in range(30)]
    assert reasons.explaining_tail(log, limit=5) == log[-5:]


# --- the watcher picks the code --------------------------------------------------------


def watch(
    exit_reason: str | None = None, oom_kills: int = 0, pool_exit: str | None = None
) -> tuple[Watcher, list[dict]]:
    """A watcher over a fake backend where pid 10 (attempt 1 of task t on w0) has died."""
    pool_exits = {10: pool_exit} if pool_exit is not None else {}
    placement = WatchedPlacement(oom=oom_kills, exit_reason=exit_reason, pool_exits=pool_exits)
    ledger = Recorder()
    events = ledger.events
    chaos = Watcher(placement, ledger)  # type: ignore[arg-type]
    start = {"type": h.ATTEMPT_START, "task_id": "t", "attempt": 1, "pid": 10, "worker": "w0"}
    chaos.observe(start)
    return chaos, events


def exit_of(chaos: Watcher, events: list[dict]) -> tuple[str, str]:
    chaos.check()
    (event,) = [e for e in events if e["type"] == h.PROCESS_EXIT]
    return event["reason_code"], event["reason"]


def fault_event(**fields: object) -> dict:
    """The fault event the nemesis records: whom it hit (``blame``) and why that one died."""
    return {"type": h.FAULT, "status": "injected"} | fields


def test_a_blamed_fault_gives_its_signal_code_and_keeps_its_text() -> None:
    chaos, events = watch()
    chaos.observe(fault_event(blame="pid", pid=10, cause="SIGKILL by kill_child fault"))
    assert exit_of(chaos, events) == ("fault_sigkill", "SIGKILL by kill_child fault")
    chaos, events = watch()
    chaos.observe(fault_event(blame="worker", worker="w0", cause="SIGQUIT by quit fault"))
    assert exit_of(chaos, events)[0] == "fault_sigquit"


def test_an_oom_kill_a_time_limit_a_dead_worker_and_nothing_seen() -> None:
    assert exit_of(*watch(oom_kills=1))[0] == "oom_kill"
    chaos, events = watch()
    chaos.observe({"type": h.TASK_FAILURE, "task_id": "t", "exc_type": "TimeLimitExceeded"})
    assert exit_of(chaos, events)[0] == "time_limit"
    code, text = exit_of(*watch(exit_reason="signal:11"))
    assert code == "signal:11" and "SIGSEGV" in text
    assert exit_of(*watch())[0] == "worker_lost"
    code, text = exit_of(*watch(pool_exit="signal:11"))  # the pool process died, worker lives
    assert code == "signal:11" and text == "died of SIGSEGV (signal 11) with no fault injected"
    assert exit_of(*watch(exit_reason="container exited (ExitCode=1)")) == (
        "worker_lost", "container exited (ExitCode=1)"
    )  # fmt: skip
