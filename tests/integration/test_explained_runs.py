"""Explanation lines on real runs (issue 17, item 7): a worker SIGKILLed with an acks_late task
on Redis, a short visibility timeout, and a run that ends before Kombu's restore sweep comes
round. The pending task's line must say so, naming the visibility timeout, the sweep cadence and
the run's length; the same run with a 1 s sweep recovers the task, which proves the line names
the real cause."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.run.runner import RunOptions, run_scenario

pytestmark = pytest.mark.integration

# The replacement worker's first sweep (at its start) must come before the message is
# restorable, else it restores the task and the run ends quiescent: with 3 s a replacement that
# took ~3 s to start under CI's load did just that. 8 s leaves room for a slow start.
VISIBILITY = 8
TIMEOUT = 16.0  # seconds: past the visibility timeout, far short of the default sweep (100 s)


def _scenario(name: str, transport: dict):
    return parse_scenario(
        {
            "name": name,
            "description": "kill_worker with acks_late on Redis; the restore sweep decides",
            "celery": {
                "task_acks_late": True,
                "task_reject_on_worker_lost": True,
                # a kill inside the restore sweep would hold Kombu's mutex 300 s (README)
                "broker_transport_options": {
                    "visibility_timeout": VISIBILITY,
                    "unacked_mutex_expire": 5,
                }
                | transport,
            },
            "broker": {"kind": "redis"},
            "workers": {"count": 1, "concurrency": 1},
            "workload": [
                {
                    "task": "sample_tasks.tasks.ingest_document",
                    "kwargs": {"doc_id": "doc-{n}", "steps": 10, "step_seconds": 0.1},
                }
            ],
            "faults": [
                {"kind": "kill_worker", "when": {"task": 0, "checkpoint": "step-2"}},
                {"kind": "start_worker", "when": {"after_fault": 0, "delay": 0.5}},
            ],
            "timeout": TIMEOUT,
        },
        f"{name}.yaml",
    )


def test_a_run_ending_before_the_restore_sweep_says_so(tmp_path: Path) -> None:
    scenario = _scenario("sweep-outlasts-run", {})  # Kombu's default sweep: 10 s x 10
    result = run_scenario(scenario, RunOptions(report_dir=tmp_path), tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    assert result.end_reason == "deadline"
    (task,) = result.verdicts.tasks
    assert (task.outcome, task.in_broker) == ("pending", ["unacked"])
    (line,) = [line for line in result.explanations if line.startswith("pending ")]
    for words in (
        "Redis's unacked set",
        "kill_worker",
        "task_acks_late=True nobody was left to acknowledge or reject",
        f"visibility_timeout={VISIBILITY}s",
        "Kombu's restore sweep every 100s (unacked_restore_interval=10s x"
        " unacked_restore_throttle=10, Kombu defaults)",
        f"(deadline, timeout {TIMEOUT:g}s)",
        "the restore sweep outlasted the run",
    ):
        assert words in line, line
    # the same line in every report
    saved = json.loads((result.report_dir / "result.json").read_text())
    assert line in saved["explanations"]
    page = html.unescape((result.report_dir / "report.html").read_text())
    assert line.split(f"[{task.task_id}]: ", 1)[1] in page  # under the pending anomaly


def test_with_a_one_second_sweep_the_same_kill_recovers(tmp_path: Path) -> None:
    """The control: only the sweep cadence differs, and the task comes back within the run."""
    fast = {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
    scenario = _scenario("sweep-fast", fast)
    result = run_scenario(scenario, RunOptions(report_dir=tmp_path), tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    assert result.verdicts.counts["recovered"] == 1, result.explanations
    assert result.verdicts.counts["pending"] == 0
    assert not [line for line in result.explanations if line.startswith("pending ")]
