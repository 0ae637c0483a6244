"""Verdicts at the edges of a run (issue 17), against real workers and real signals: the harness's
own whole-worker kill is never a crash, a fault aimed at a finished task lands nowhere, and no
task is judged while a live worker may still hold it, not yet due."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_chaos.brokers.redis import inspect
from celery_chaos.core import history as h
from celery_chaos.core.checker import check
from celery_chaos.core.conclusion import INCONCLUSIVE, ScenarioResult
from celery_chaos.core.scenario import Scenario, parse_scenario
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.run import workload
from celery_chaos.run.loop import Loop
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.scenario_support import run as run_file

pytestmark = pytest.mark.integration
WORK = "sample_tasks.tasks.work"
HOLD_DEADLINE = 20.0


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


def test_a_kill_worker_aimed_at_a_finished_task_is_missed_and_the_run_inconclusive(
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
    assert fault["status"] == "missed" and fault.get("worker") is None, fault
    assert fault["detail"] == "task 0 is not running: no worker to target"
    first_end = next(e for e in history if e["type"] == h.ATTEMPT_END)
    assert first_end["seq"] < fault["seq"]  # task 0 had ended when the fault fired
    assert not [e for e in history if e["type"] == h.WORKER_EXIT]  # nobody was killed
    assert result.verdicts.counts["ok"] == 2
    assert result.status == INCONCLUSIVE
    assert "fault 0 (kill_worker) missed" in (result.reason or "")


# --- items 2 and 3: no verdict while a live worker may still run the task -----------------

COUNTDOWN = 5.0


def held_tasks(count: int) -> dict[str, Any]:
    """``count`` tasks sent with a countdown: the worker fetches them at once and holds them in
    memory (Redis: in the ``unacked`` hash too) until they are due."""
    kwargs = {"seconds": 0.2, "steps": 2}
    return {"task": WORK, "count": count, "kwargs": kwargs, "options": {"countdown": COUNTDOWN}}


@pytest.mark.parametrize("replacement", [True, False], ids=["replacement", "no-replacement"])
def test_a_worker_that_dies_of_a_broker_restart_while_holding_countdowns_is_a_crash(
    tmp_path: Path, replacement: bool
) -> None:
    """Item 2, measured on Celery/Kombu 5.7: the Redis broker (no persistence) restarts while
    the worker holds three countdown tasks; the worker logs ``Unrecoverable error:
    AttributeError`` and exits about 1.2 s later. The run used to end quiescent 1 s after the
    fault, before the exit was seen (worker_crashes 0). Now it may not end while a live worker
    may hold a task that is not due: with a replacement worker alive it waits past the
    countdowns; without one it ends once the holder's exit is in the history."""
    faults: list[dict[str, Any]] = [{"kind": "restart_broker", "when": {"at": 1.0}}]
    if replacement:
        faults.append({"kind": "start_worker", "when": {"after_fault": 0, "delay": 0.5}})
    result, history = run(
        tmp_path,
        broker={"persistence": "none"},
        workers={"count": 1, "concurrency": 2},
        workload=[held_tasks(3)],
        faults=faults,
    )

    assert result.end_reason == "quiescent"
    assert result.verdicts.counts["worker_crashes"] >= 1, result.verdicts.crashes
    (first,) = [e for e in history if e["type"] == h.WORKER_STARTED][:1]
    assert any(c.worker == first["worker"] for c in result.verdicts.crashes)
    assert result.verdicts.counts["lost"] == 3  # the broker lost them, their holder died
    (end,) = [e for e in history if e["type"] == h.RUN_END]
    exit_event = next(e for e in history if e["type"] == h.WORKER_EXIT)
    assert exit_event["seq"] < end["seq"]
    if replacement:
        due = max(e["due"] for e in history if e["type"] == h.DISPATCH)
        assert end["ts"] >= due  # a live worker might have held them: the run waited


def hide_held_message(backend: LocalPlacement, task_id: str) -> None:
    """Wait (deadline) until the worker holds ``task_id`` (its message in Redis's ``unacked``
    hash), then drop the hash as an eviction or a flush would: the worker lives on and still
    holds the task in memory, and nothing in the broker shows it any more."""
    client = backend.broker.client()
    end = time.monotonic() + HOLD_DEADLINE
    while "unacked" not in inspect(client).locations.get(task_id, []):
        if time.monotonic() > end:
            pytest.fail(f"task {task_id} was never held within {HOLD_DEADLINE}s")
        time.sleep(0.02)
    client.delete("unacked", "unacked_index")
    assert task_id not in inspect(client).locations


@pytest.mark.parametrize("how", ["countdown", "retry"])
def test_a_task_held_by_a_live_worker_is_not_judged_before_it_is_due(
    tmp_path: Path, how: str
) -> None:
    """Item 3 proper: a live worker holds a task that is not due (a dispatch countdown, or the
    countdown of a retry the task asked for) and the broker shows no message of it. The run
    waits until it is due (plus the settle window): the task runs and ends ok, never called
    lost. Before the fix the quiet window ended one settle after the message vanished."""
    if how == "countdown":
        item = held_tasks(1)
    else:
        kwargs = {"fail_times": 1, "retry_delay": COUNTDOWN, "seconds": 0.1}
        item = {"task": "sample_tasks.tasks.flaky", "kwargs": kwargs}
    spec = scenario(workers={"count": 1, "concurrency": 2}, workload=[item], timeout=30)
    with LocalPlacement(spec, tmp_path) as backend:
        backend.start()
        assert backend.ledger is not None
        loop = Loop(backend, backend.ledger, workload.plan(spec), [], seed=1, log=lambda _: None)
        client = workload.make_client(backend.broker.url, spec.celery)
        try:
            loop.send_due(client)
            task_id = loop.dispatches[0].task_id
            if how == "retry":
                wait_for_event(loop, h.ATTEMPT_END)
            hide_held_message(backend, task_id)
            quiet = loop.wait(spec.timeout, spec.settle, client=client)
            ended = time.time()
            loop.stop_faults()
            history, state, held = loop.snapshot()
        finally:
            client.close()

    assert quiet
    due = [e["due"] for e in history if e.get("due") is not None]
    assert len(due) == 1 and ended >= due[0]
    (task,) = check(history, state, held).tasks
    assert task.outcome == "ok", task


def wait_for_event(loop: Loop, kind: str) -> h.Event:
    """Step the loop (no faults) until an event of ``kind`` is in its history (deadline)."""
    end = time.monotonic() + HOLD_DEADLINE
    while time.monotonic() < end:
        loop.step(fire=False)
        found = [e for e in loop.history() if e["type"] == kind]
        if found:
            return found[0]
        time.sleep(0.02)
    pytest.fail(f"no {kind} within {HOLD_DEADLINE}s")
