"""`celery-chaos run` as a user runs it: exit codes, reports, and cleanup on SIGTERM/Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import psutil
import pytest
from celery_chaos.placements.local.cgroups import CgroupUnavailable, MemoryCgroup, v1_parent

from tests.integration.interrupts import as_from_a_terminal, signal_state
from tests.integration.scenario_support import wait_for_line

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

LONG_SCENARIO = """
name: long-running
description: a task long enough to interrupt the harness while it runs
celery: {task_acks_late: true}
workers: {count: 1, concurrency: 1, memory_limit: 1G}
workload:
  - {task: sample_tasks.tasks.work, kwargs: {seconds: 30, steps: 30}}
expect: {ok: 1}
timeout: 60
"""

WRONG_EXPECTATION = """
name: defaults-expected-safe
description: claims the defaults are safe under a child kill; they are not
workers: {count: 1, concurrency: 1}
workload:
  - {task: sample_tasks.tasks.work, kwargs: {seconds: 1.0, steps: 10}}
faults:
  - {kind: kill_child, when: {task: 0, checkpoint: step-3}}
expect: {lost: 0}
timeout: 30
"""


def celery_chaos(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery_chaos.cli", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=as_from_a_terminal,
        **kwargs,
    )


def chaos_cgroups(run_id: str = "") -> list[Path]:
    """The harness's memory cgroups (of run ``run_id`` only, when given: other tests running
    at the same time make theirs)."""
    try:
        parent = v1_parent()
    except OSError:
        return []
    return [p for p in parent.glob(f"celery-chaos-{run_id}*") if p.is_dir()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_interrupted_run_leaves_nothing_running(tmp_path: Path, sig: int) -> None:
    try:
        MemoryCgroup.create("celery-chaos-test-probe").remove()
    except CgroupUnavailable as error:
        pytest.skip(str(error))
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG_SCENARIO)
    process = celery_chaos("run", str(scenario), "--report-dir", str(tmp_path / "r"), "-v")
    line = wait_for_line(process, "attempt_start", deadline=60)
    run_id = re.search(r"@chaos-([0-9a-f]+)", line).group(1)  # workers are named w<N>@chaos-<run>
    assert chaos_cgroups(run_id), "the run made no cgroup: nothing would be proven below"
    started = psutil.Process(process.pid).children(recursive=True)
    assert len(started) >= 4  # ledger, broker, worker main, pool child
    state = signal_state(process.pid)
    process.send_signal(sig)
    assert process.wait(timeout=30) == 130, state
    gone, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], f"left running: {[p.pid for p in alive]}"
    assert chaos_cgroups(run_id) == []


def test_unmet_expectation_exits_1_and_names_the_task(tmp_path: Path) -> None:
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(WRONG_EXPECTATION)
    process = celery_chaos("run", str(scenario), "--report-dir", str(tmp_path))
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output
    latest = tmp_path / "latest"
    result = json.loads((latest / "defaults-expected-safe" / "result.json").read_text())
    lost_id = result["tasks"][0]["task_id"]
    assert result["verdicts"]["lost"] == 1 and result["status"] == "failed"
    failure = ET.parse(latest / "junit.xml").getroot().find("testcase/failure")
    assert failure is not None and lost_id in failure.get("message")
    assert (latest / "defaults-expected-safe" / "history.jsonl").stat().st_size > 0
    assert (latest / "defaults-expected-safe" / "logs" / "worker-w0.log").exists()
    assert "| defaults-expected-safe | failed |" in (latest / "summary.md").read_text()


CHECKPOINT_NEVER_REACHED = """
name: checkpoint-never-reached
description: the fault waits for a checkpoint the task never calls
workers: {count: 1, concurrency: 1}
workload:
  - {task: sample_tasks.tasks.work, kwargs: {seconds: 0.2, steps: 2}}
faults:
  - {kind: kill_child, when: {task: 0, checkpoint: no-such-step}}
expect: {ok: 1}
timeout: 6
"""

NO_SUCH_WORKER = """
name: no-such-worker
description: the fault aims at worker 1 before the start_worker fault that would bring it
workers:
  count: 1
  concurrency: 1
  env: {DATABASE_URL: "postgres://user:secret@h/db", API_TOKEN: abc}
workload:
  - {task: sample_tasks.tasks.work, kwargs: {seconds: 1.0, steps: 4}}
faults:
  - {kind: kill_worker, when: {task: 0, checkpoint: step-1}, target: {worker: 1}}
  - {kind: start_worker, when: {at: 3}}
expect: {ok: 1}
timeout: 30
"""


def test_a_run_whose_faults_never_landed_is_inconclusive_exit_3(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "a.yaml").write_text(CHECKPOINT_NEVER_REACHED)
    (suite / "b.yaml").write_text(NO_SUCH_WORKER)
    process = celery_chaos("run", str(suite), "--report-dir", str(tmp_path / "r"))
    output, _ = process.communicate(timeout=180)

    assert process.returncode == 3, output
    assert re.search(r"checkpoint-never-reached:\s+inconclusive", output)
    assert "why: fault 0 (kill_child) missed: its trigger did not happen" in output
    assert re.search(r"celery-chaos: python \S+, celery \S+, kombu \S+, billiard \S+", output)
    latest = tmp_path / "r" / "latest"
    never = json.loads((latest / "checkpoint-never-reached" / "result.json").read_text())
    assert (never["status"], never["verdicts"]["ok"]) == ("inconclusive", 1)
    assert never["end_reason"] == "deadline"
    assert never["versions"]["broker"].startswith("redis ")
    assert never["versions"]["redis-py"] and never["versions"]["celery_chaos"]
    nobody = json.loads((latest / "no-such-worker" / "result.json").read_text())
    assert nobody["status"] == "inconclusive"
    assert nobody["reason"] == "fault 0 (kill_worker) missed: no worker to target"
    junit = ET.parse(latest / "junit.xml").getroot()
    assert (junit.get("errors"), junit.get("failures")) == ("2", "0")
    assert "| no-such-worker | inconclusive |" in (latest / "summary.md").read_text()
    for path in (tmp_path / "r").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert "secret" not in text and "API_TOKEN: abc" not in text, path
    assert json.loads((latest / "no-such-worker" / "result.json").read_text())["config"]["workers"][
        "env"
    ] == {"DATABASE_URL": "postgres://user:***@h/db", "API_TOKEN": "***"}


def test_a_checker_error_is_that_scenarios_error_and_the_suite_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery_chaos.core.scenario import parse_scenario
    from celery_chaos.run import runner

    real_check, calls = runner.check, []

    def flaky_check(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("checker bug")
        return real_check(*args, **kwargs)

    monkeypatch.setattr(runner, "check", flaky_check)
    scenarios = [
        parse_scenario(
            {"name": name, "description": "tiny", "timeout": 20, "settle": 0.2,
             "workers": {"count": 1, "concurrency": 1}, "expect": {"ok": 1},
             "workload": [{"task": "sample_tasks.tasks.work", "kwargs": {"seconds": 0.1}}]},
            name,
        )
        for name in ("first", "second")
    ]  # fmt: skip
    options = runner.RunOptions(report_dir=tmp_path)
    suite = runner.run_suite(scenarios, options, log=lambda _: None)

    first, second = suite.results
    assert (first.status, first.reason) == ("error", "ZeroDivisionError: checker bug")
    assert second.status == "passed"
    assert suite.exit_code == 2
    written = json.loads((suite.run_dir / "first" / "result.json").read_text())
    assert written["status"] == "error" and "checker bug" in written["reason"]
