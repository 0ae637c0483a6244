"""What integration tests share: running a suite scenario by file name, a scenario with no
initial workers (for tests that drive a backend themselves), and waiting for a line of a harness
subprocess's output with a deadline (never a fixed sleep)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core.conclusion import ScenarioResult, failure_message
from celery_chaos.core.scenario import Scenario, load_file, parse_scenario
from celery_chaos.run.runner import RunOptions, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def run(name: str, tmp_path: Path) -> ScenarioResult:
    """Run ``scenarios/<name>`` on the local backend, strict (README: Strict): the result must
    carry verdicts, and every non-zero anomaly verdict must be named in the scenario's expect,
    so the project's own suite never passes with a finding nobody claimed."""
    scenario = load_file(SCENARIOS / name)
    options = RunOptions(report_dir=tmp_path, strict=True)
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    assert not result.unclaimed, f"{name}: {failure_message(result)}"
    return result


def workerless(name: str, **spec: Any) -> Scenario:
    """A scenario whose backend starts broker and ledger but no worker (``spec`` adds fields,
    e.g. ``broker`` or ``celery``), for a test that starts and kills workers itself."""
    data = {"name": name, "description": f"{name} (integration test)", "timeout": 600}
    data |= {"workers": {"count": 0}, "workload": [{"task": "sample_tasks.tasks.work"}], **spec}
    return parse_scenario(data, f"{name}.yaml")


def wait_for_line(process: subprocess.Popen, needle: str, deadline: float = 90) -> str:
    """Read the process's output until a line contains ``needle`` (returned); fail after
    ``deadline`` s."""
    end = time.monotonic() + deadline
    assert process.stdout is not None
    for line in process.stdout:
        if needle in line:
            return line
        if time.monotonic() > end:
            break
    pytest.fail(f"{needle!r} never appeared in the output")
    return ""  # not reached: pytest.fail raises
