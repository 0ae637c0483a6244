"""The faults and options the default suite does not exercise, each against real workers:
warm and cold shutdown, pause/resume, restart_worker, a seeded random trigger, and the task
options countdown, time_limit and soft_time_limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.run.runner import RunOptions, ScenarioResult, run_scenario

pytestmark = pytest.mark.integration
ACK_LATE = {"task_acks_late": True, "task_reject_on_worker_lost": True}
FAST_RESTORE = {
    "broker_transport_options": {
        "visibility_timeout": 2,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
}


def run(tmp_path: Path, seed: int | None = None, **spec: Any) -> ScenarioResult:
    data = {"name": "adhoc", "description": "integration test", "timeout": 30, **spec}
    scenario = parse_scenario(yaml.safe_load(yaml.safe_dump(data)), "adhoc.yaml")
    result = run_scenario(
        scenario, RunOptions(report_dir=tmp_path, seed=seed), tmp_path, log=lambda _: None
    )
    assert result.verdicts is not None, result.reason
    return result


def work(seconds: float = 1.0, steps: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "task": "sample_tasks.tasks.work",
        "kwargs": {"seconds": seconds, "steps": steps},
        **extra,
    }


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


def test_seeded_random_trigger_replays_the_same_schedule(tmp_path: Path) -> None:
    spec = {
        "celery": ACK_LATE,
        "workload": [work(seconds=2.0, steps=20)],
        "faults": [{"kind": "kill_child", "when": {"random": {"min": 0.3, "max": 1.2}}}],
    }
    first = run(tmp_path / "a", seed=1234, **spec)
    again = run(tmp_path / "b", seed=1234, **spec)
    assert first.schedule == again.schedule and first.seed == 1234
    for result in (first, again):
        assert result.verdicts.faults[0]["status"] == "injected"
        assert result.verdicts.tasks[0].outcome == "recovered"


def test_countdown_delays_the_start(tmp_path: Path) -> None:
    result = run(tmp_path, workload=[work(seconds=0.2, steps=2, options={"countdown": 1.5})])
    task = result.verdicts.tasks[0]
    assert task.outcome == "ok"
    assert task.attempts[0].started - task.dispatched >= 1.4


def test_hard_time_limit_kills_the_task_and_celery_reports_it(tmp_path: Path) -> None:
    result = run(tmp_path, workload=[work(seconds=5.0, options={"time_limit": 1})])
    task = result.verdicts.tasks[0]
    # Celery sends task_failure twice for a hard time limit (timeout handler + on_failure)
    assert task.outcome == "lost" and set(task.failures) == {"TimeLimitExceeded"}


def test_soft_time_limit_raises_inside_the_task(tmp_path: Path) -> None:
    result = run(tmp_path, workload=[work(seconds=5.0, options={"soft_time_limit": 0.5})])
    task = result.verdicts.tasks[0]
    assert "failed" in task.labels and task.failures == ["SoftTimeLimitExceeded"]
    assert task.attempts[0].state == "FAILURE"
