"""Task options against real workers: countdown delays the start, a hard time_limit kills the
task (Celery reports it), a soft_time_limit raises inside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.adhoc_support import run, work

pytestmark = pytest.mark.integration


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
