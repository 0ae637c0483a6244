"""`celery-chaos run` as a user runs it: exit codes, reports, and cleanup on SIGTERM/Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import psutil
import pytest
from celery_chaos.backends.local.cgroups import CgroupUnavailable, MemoryCgroup, _v1_parent

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
        **kwargs,
    )


def wait_for_line(process: subprocess.Popen, needle: str, deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    assert process.stdout is not None
    for line in process.stdout:
        if needle in line:
            return
        if time.monotonic() > end:
            break
    pytest.fail(f"{needle!r} never appeared in the output")


def chaos_cgroups() -> list[Path]:
    try:
        parent = _v1_parent()
    except OSError:
        return []
    return [p for p in parent.glob("celery-chaos-*") if p.is_dir()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_interrupted_run_leaves_nothing_running(tmp_path: Path, sig: int) -> None:
    try:
        MemoryCgroup.create("celery-chaos-test-probe").remove()
    except CgroupUnavailable as error:
        pytest.skip(str(error))
    scenario = tmp_path / "long.yaml"
    scenario.write_text(LONG_SCENARIO)
    cgroups_before = set(chaos_cgroups())
    process = celery_chaos("run", str(scenario), "--report-dir", str(tmp_path / "r"), "-v")
    wait_for_line(process, "attempt_start")
    started = psutil.Process(process.pid).children(recursive=True)
    assert len(started) >= 4  # ledger, broker, worker main, pool child
    process.send_signal(sig)
    assert process.wait(timeout=30) == 130
    gone, alive = psutil.wait_procs(started, timeout=10)
    assert alive == [], f"left running: {[p.pid for p in alive]}"
    assert set(chaos_cgroups()) <= cgroups_before


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
