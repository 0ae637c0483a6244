"""Verdicts at the edges of a run (issue 17), against real workers and real signals: the harness's
own whole-worker kill is never a crash, and a fault aimed at a finished task lands nowhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_chaos.core import history as h
from celery_chaos.core.outcome import INCONCLUSIVE
from celery_chaos.core.scenario import Scenario, parse_scenario
from celery_chaos.run.runner import RunOptions, ScenarioResult, run_scenario

from tests.integration.scenario_support import run as run_file

pytestmark = pytest.mark.integration
WORK = "sample_tasks.tasks.work"


def scenario(**spec: Any) -> Scenario:
    data = {"name": "edges", "description": "run edges (integration test)", "timeout": 60}
    data |= spec
    return parse_scenario(yaml.safe_load(yaml.safe_dump(data)), "edges.yaml")


def run(tmp_path: Path, **spec: Any) -> tuple[ScenarioResult, list[h.Event]]:
    result = run_scenario(
        scenario(**spec), RunOptions(report_dir=tmp_path), tmp_path, log=lambda _: None
    )
    assert result.verdicts is not None, result.reason
    return result, history_of(tmp_path)


def history_of(report_dir: Path) -> list[h.Event]:
    """The history the run wrote (history.jsonl), as the checker read it."""
    return h.read_jsonl(str(next(report_dir.rglob("history.jsonl"))))


def test_kill_child_on_a_gevent_pool_kills_the_worker_and_is_not_counted_a_crash(
    tmp_path: Path,
) -> None:
    """Item 1: scenario 24a's kill_child kills the whole gevent worker; the worker_exit that
    follows is the harness's doing (the fault event blames the worker), not a crash."""
    result = run_file("24a-gevent-kill-is-whole-worker.yaml", tmp_path)

    fault = next(f for f in result.verdicts.faults if f["kind"] == "kill_child")
    assert fault["status"] == "injected" and fault["blame"] == "worker"
    exits = [e for e in history_of(tmp_path) if e["type"] == h.WORKER_EXIT]
    assert [e["worker"] for e in exits] == [fault["worker"]]  # it did die, of our SIGKILL
    assert exits[0]["signal"] == 9
    assert result.verdicts.counts["worker_crashes"] == 0


def test_a_kill_worker_aimed_at_a_finished_task_is_skipped_and_the_run_inconclusive(
    tmp_path: Path,
) -> None:
    """Item 4: a chain on one pool process, so task 0 has ended before task 1 reaches step-1;
    the kill aimed at task 0 then has no worker and must not land on the worker of task 1."""
    step = {"task": WORK, "immutable": True, "kwargs": {"seconds": 0.2, "steps": 2}}
    chain = {"chain": [step, step]}
    kill = {"kind": "kill_worker", "when": {"task": 1, "checkpoint": "step-1"}}
    result, history = run(
        tmp_path,
        workers={"count": 1, "concurrency": 1},
        workload=[chain],
        faults=[{**kill, "target": {"task": 0}}],
    )

    (fault,) = [e for e in history if e["type"] == h.FAULT]
    assert fault["status"] == "skipped" and fault.get("worker") is None, fault
    assert fault["detail"] == "task 0 is not running: no worker to target"
    first_end = next(e for e in history if e["type"] == h.ATTEMPT_END)
    assert first_end["seq"] < fault["seq"]  # task 0 had ended when the fault fired
    assert not [e for e in history if e["type"] == h.WORKER_EXIT]  # nobody was killed
    assert result.verdicts.counts["ok"] == 2
    assert result.status == INCONCLUSIVE
    assert "fault 0 (kill_worker) skipped" in (result.reason or "")
