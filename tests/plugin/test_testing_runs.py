"""``celery_chaos.testing`` on real workers: a scenario built in Python runs as its file would
(scenario 01: Celery's defaults lose a task whose pool process is SIGKILLed), and a failing
``assert_verdicts`` says why the broken verdict happened, from ``run_scenario``'s result and from
``chaos_env.verdicts()`` in a pytest run as a user's would."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.testing import assert_verdicts, run_scenario, scenario

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

WORK = "sample_tasks.tasks.work"
ACKED_EARLY = "with task_acks_late=False (Celery default) the message was acknowledged before"


def test_a_built_scenario_runs_on_real_workers(tmp_path: Path) -> None:
    built = (
        scenario("built-defaults-child-kill")
        .with_workers(1, concurrency=2)
        .with_workload(WORK, count=2, kwargs={"seconds": 1.0, "steps": 10})
        .with_fault("kill_child", when={"task": 0, "checkpoint": "step-5"})
        .expect(lost=1, ok=1)
        .with_options(timeout=30)
    )

    result = run_scenario(built, report_dir=tmp_path)

    assert result.status == "passed", result.reason
    assert (result.report_dir / "result.json").is_file()
    killed, other = result.verdicts.tasks
    assert killed.outcome == "lost" and other.outcome == "ok"
    assert killed.attempts[0].exit_reason == "SIGKILL by kill_child fault"
    assert_verdicts(result.verdicts, lost=1, ok=1)
    with pytest.raises(AssertionError) as raised:
        assert_verdicts(result.verdicts, lost=0)
    explained = [line for line in str(raised.value).splitlines() if line.startswith("explained:")]
    assert len(explained) == 1
    assert f"lost #0 {WORK}[{killed.task_id}]" in explained[0] and ACKED_EARLY in explained[0]


ENV_TEST = """
from celery_chaos.testing import ChaosEnv, Verdicts, assert_verdicts


def test_defaults_lose_the_killed_task(chaos_env: ChaosEnv) -> None:
    task = chaos_env.dispatch("sample_tasks.tasks.work", kwargs={"seconds": 1.0, "steps": 10})
    chaos_env.fault("kill_child", task=task, checkpoint="step-5")
    assert chaos_env.wait_quiescent(timeout=30)
    verdicts: Verdicts = chaos_env.verdicts()
    assert_verdicts(verdicts, lost=0)
"""


def test_chaos_env_assertion_explains_the_broken_verdict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_env=ENV_TEST)

    result = pytester.runpytest_subprocess("--chaos-report-dir", "out", timeout=180)

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: verdicts not as expected:",
            f"*lost: expected == 0, got 1 ({WORK}?*?)",
            f"*explained: lost #0 {WORK}?*?: attempt 1 on * died at *(fault 0 kill_child at *);"
            f" {ACKED_EARLY}*",
            f"*#0 {WORK}?*?: lost, failed; attempt 1 on *: died at step-5 (SIGKILL by kill_child"
            " fault)*",
        ]
    )
