"""The exit-reason vocabulary: fixed codes tools can rely on, each with human text beside it."""

from __future__ import annotations

import pytest
from celery_chaos.core import exit_reasons as reasons
from celery_chaos.core.exit_reasons import ExitReason


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
        "oom_kill", "fault_sigkill", "fault_sigterm", "fault_sigquit", "time_limit", "worker_lost"
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
