"""Real workers, fire-and-forget agent: a pool process SIGKILLed right after it recorded events
loses none of them (all there, in the order sent, with the ledger's attempt numbers), and a
breakpoint aimed at attempt N still fires at attempt N."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.agent import instrument
from celery_chaos.core import history as h
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.run.runner import RunOptions, run_scenario

pytestmark = pytest.mark.integration
EFFECTS = 200


def _run(data: dict[str, Any], tmp_path: Path) -> list[h.Event]:
    """Run ``data`` on the local placement; its history as the report wrote it."""
    assert LocalPlacement.agent_writes == instrument.ASYNC_WRITES  # what these tests are about
    base = {"description": "agent kill test", "timeout": 60, "settle": 0.3}
    scenario = parse_scenario(base | data, "inline")
    result = run_scenario(scenario, RunOptions(report_dir=tmp_path), tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    lines = (result.report_dir / "history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _of(history: list[h.Event], task_id: str) -> list[h.Event]:
    return [e for e in history if e.get("task_id") == task_id]


def test_a_pool_process_killed_right_after_recording_loses_no_event(tmp_path: Path) -> None:
    history = _run(
        {
            "name": "record-then-die",
            "workers": {"count": 1, "concurrency": 2},
            "workload": [
                {
                    "task": "sample_tasks.tasks.record_then_die",
                    "count": 4,
                    "kwargs": {"effects": EFFECTS},
                },
            ],  # fmt: skip
        },
        tmp_path,
    )
    task_ids = [e["task_id"] for e in history if e["type"] == h.DISPATCH]
    assert len(task_ids) == 4
    for task_id in task_ids:
        mine = [e for e in _of(history, task_id) if e["type"] in (h.ATTEMPT_START, h.SIDE_EFFECT)]
        assert [e["type"] for e in mine] == [h.ATTEMPT_START] + [h.SIDE_EFFECT] * EFFECTS
        assert [e["key"] for e in mine[1:]] == [f"effect-{n}" for n in range(EFFECTS)]
        assert {e["attempt"] for e in mine} == {1}
        assert len({e["pid"] for e in mine}) == 1
    assert not [e for e in history if e["type"] == h.WORKER_EXIT]  # the barrier's kill is silent


def test_a_breakpoint_aimed_at_attempt_two_fires_there(tmp_path: Path) -> None:
    """Attempt 1 is killed at step-2, attempt 2 at step-3 (acks_late + reject: redelivered),
    attempt 3 finishes: each attempt's last checkpoint is where its fault was aimed."""
    history = _run(
        {
            "name": "breakpoint-attempt-two",
            "celery": {"task_acks_late": True, "task_reject_on_worker_lost": True},
            "workers": {"count": 1, "concurrency": 1},
            "workload": [
                {"task": "sample_tasks.tasks.work", "kwargs": {"seconds": 0.5, "steps": 5}}
            ],  # fmt: skip
            "faults": [
                {"kind": "kill_child", "when": {"task": 0, "checkpoint": "step-2"}},
                {"kind": "kill_child", "when": {"task": 0, "checkpoint": "step-3", "attempt": 2}},
            ],
        },
        tmp_path,
    )
    (task_id,) = [e["task_id"] for e in history if e["type"] == h.DISPATCH]
    checkpoints: dict[int, list[str]] = {}
    for event in _of(history, task_id):
        if event["type"] == h.CHECKPOINT:
            checkpoints.setdefault(event["attempt"], []).append(event["name"])
    assert checkpoints == {
        1: ["step-0", "step-1", "step-2"],
        2: ["step-0", "step-1", "step-2", "step-3"],
        3: ["step-0", "step-1", "step-2", "step-3", "step-4", "done"],
    }
    faults = [e["status"] for e in history if e["type"] == h.FAULT]
    assert faults == ["injected", "injected"]
