"""The worker signal faults against real workers: warm shutdown (terminate) lets the running task
finish, cold shutdown (quit) plus a replacement loses no acks_late task, pause/resume delays
without interrupting, and restart_worker's SIGKILL is recovered with a fast restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.adhoc_support import ACK_LATE, FAST_RESTORE, run, work

pytestmark = pytest.mark.integration


def test_warm_shutdown_lets_the_running_task_finish(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        celery=ACK_LATE,
        workload=[work()],
        faults=[{"kind": "terminate", "when": {"task": 0, "checkpoint": "step-3"}}],
    )
    task = result.verdicts.tasks[0]
    assert task.outcome == "ok" and len(task.attempts) == 1
    assert result.verdicts.faults[0]["status"] == "injected"


def test_cold_shutdown_then_replacement_does_not_lose_an_acks_late_task(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        celery=ACK_LATE | FAST_RESTORE,
        # Shorter than the 2 s visibility timeout even on a loaded machine: a longer run would be
        # handed out again by the restore sweep (scenario 05's duplicate), not by the shutdown.
        workload=[work(seconds=1.0)],
        faults=[
            {"kind": "quit", "when": {"task": 0, "checkpoint": "step-3"}},
            {"kind": "start_worker", "when": {"after_fault": 0, "delay": 0.5}},
        ],
    )
    task = result.verdicts.tasks[0]
    assert task.outcome in ("ok", "recovered"), task
    assert result.verdicts.counts["lost"] == 0


def test_pause_and_resume_delay_but_do_not_interrupt(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        celery=ACK_LATE,
        workload=[work()],
        faults=[
            {"kind": "pause", "when": {"task": 0, "checkpoint": "step-2"}},
            {"kind": "resume", "when": {"after_fault": 0, "delay": 1.5}, "target": {"worker": 0}},
        ],
    )
    task = result.verdicts.tasks[0]
    assert task.outcome == "ok" and len(task.attempts) == 1
    attempt = task.attempts[0]
    assert attempt.ended - attempt.started >= 1.0 + 1.5 - 0.2  # the work plus the frozen time


def test_restart_worker_recovers_with_fast_restore(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        celery=ACK_LATE | FAST_RESTORE,
        workload=[work()],
        faults=[{"kind": "restart_worker", "when": {"task": 0, "checkpoint": "step-4"}}],
    )
    task = result.verdicts.tasks[0]
    assert task.outcome == "recovered"
    assert task.attempts[0].worker != task.attempts[1].worker
    assert task.attempts[0].exit_reason == "SIGKILL by restart_worker fault"
