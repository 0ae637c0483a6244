"""Real workers: a task that retries itself is ``ok`` + ``retried``, not ``recovered``; a retried
task that also loses an attempt is ``recovered`` + ``retried``; and a user's app that never calls
``install(app)`` reaches verdicts (the agent is loaded through the bootstrap)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.run.preflight import preflight
from celery_chaos.run.runner import RunOptions, run_scenario

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]
PLAIN_PROJECT = Path(__file__).resolve().parents[1] / "fixtures" / "plain_project"
FLAKY = "sample_tasks.tasks.flaky"


def run(data: dict[str, Any], tmp_path: Path) -> ScenarioResult:
    scenario = parse_scenario(data, "inline")
    preflight(scenario, "inline")
    result = run_scenario(scenario, RunOptions(report_dir=tmp_path), tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    return result


def test_a_task_that_retries_then_succeeds_is_ok_and_retried(tmp_path: Path) -> None:
    result = run(
        {
            "name": "retry-then-succeed",
            "description": "self.retry() twice, then success; nothing interrupted",
            "workers": {"count": 1, "concurrency": 1},
            "workload": [{"task": FLAKY, "kwargs": {"fail_times": 2, "seconds": 0.05}}],
            "expect": {"ok": 1, "retried": 1, "recovered": 0},
            "settle": 0.3,
            "timeout": 30,
        },
        tmp_path,
    )

    (task,) = result.verdicts.tasks
    assert task.verdicts == ["ok", "retried"]
    assert [a.state for a in task.attempts] == ["RETRY", "RETRY", "SUCCESS"]
    assert all(a.died is None for a in task.attempts)
    assert result.end_reason == "quiescent" and result.status == PASSED


def test_a_retried_task_whose_retry_is_killed_is_recovered_and_retried(tmp_path: Path) -> None:
    result = run(
        {
            "name": "retry-killed",
            "description": "the first retry's pool process is SIGKILLed; acks_late + reject",
            "celery": {
                "task_acks_late": True,
                "task_reject_on_worker_lost": True,
                "worker_prefetch_multiplier": 1,
            },
            "workers": {"count": 1, "concurrency": 1},
            "workload": [{"task": FLAKY, "kwargs": {"fail_times": 1, "seconds": 0.05}}],
            "faults": [
                {"kind": "kill_child", "when": {"task": 0, "checkpoint": "try-1", "attempt": 2}}
            ],
            "expect": {"recovered": 1, "retried": 1, "ok": 0},
            "settle": 0.3,
            "timeout": 40,
        },
        tmp_path,
    )

    (task,) = result.verdicts.tasks
    assert task.verdicts == ["recovered", "retried"]
    assert [a.state for a in task.attempts] == ["RETRY", None, "SUCCESS"]
    assert task.attempts[1].interrupted_by == 0
    assert result.status == PASSED


PLAIN_SCENARIO = """\
name: plain-app
description: a user's app without install(app), named by workers.app
workers: {app: "plain_app:app", count: 1, concurrency: 2}
workload:
  - {task: plain_app.add, count: 2, args: [2, 3]}
expect: {ok: 2, lost: 0}
settle: 0.3
timeout: 30
"""


def test_an_app_without_install_reaches_verdicts(tmp_path: Path) -> None:
    scenario = tmp_path / "plain.yaml"
    scenario.write_text(PLAIN_SCENARIO)

    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(scenario)]
        + ["--report-dir", str(tmp_path / "reports")],
        cwd=PLAIN_PROJECT,  # the user's project folder, as `celery -A plain_app` would need
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "reports" / "latest" / "plain-app" / "result.json").read_text())
    assert [t["verdicts"] for t in result["tasks"]] == [["ok"], ["ok"]]


PLAIN_ENV_TEST = """
import pytest
from celery_chaos.testing import assert_verdicts

@pytest.mark.chaos(workers={"app": "plain_app:app", "count": 1})
def test_plain_app(chaos_env):
    chaos_env.dispatch("plain_app.add", [2, 3])
    assert chaos_env.wait_quiescent(timeout=30, settle=0.2)
    assert_verdicts(chaos_env.verdicts(), ok=1, lost=0)
"""


def test_chaos_env_runs_an_app_without_install(pytester: pytest.Pytester) -> None:
    (pytester.path / "plain_app.py").write_text((PLAIN_PROJECT / "plain_app.py").read_text())
    pytester.makepyfile(test_plain=PLAIN_ENV_TEST)

    result = pytester.runpytest_subprocess("--chaos-report-dir", "out", timeout=120)

    result.assert_outcomes(passed=1)
