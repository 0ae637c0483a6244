"""A resume/heal with no ``target.worker`` undoes its pause/partition on the worker that one hit
(scenario 21: by the resume, task 0's requeued attempt may run on the other worker)."""

from __future__ import annotations

from typing import Any

import pytest
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.placements.base import Worker
from celery_chaos.run import workload
from celery_chaos.run.nemesis import Nemesis
from celery_chaos.run.watcher import LiveAttempt

from tests.unit.histories import TASK, WORKER
from tests.unit.test_crashes import OTHER, Ledger
from tests.unit.test_crashes import Backend as TwoWorkers


class Backend(TwoWorkers):
    """Records pauses and partitions instead of carrying them out."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, bool]] = []

    def pause_worker(self, worker: Worker, paused: bool) -> str:
        self.calls.append(("pause", worker.name, paused))
        return f"{'paused' if paused else 'resumed'} {worker.name}"

    def partition(self, worker: Worker, connected: bool, duration: Any) -> str:
        self.calls.append(("partition", worker.name, connected))
        return f"{'healed' if connected else 'cut'} {worker.name}"


@pytest.mark.parametrize(("cut", "undo"), [("pause", "resume"), ("partition", "heal")])
def test_the_undo_hits_the_worker_its_fault_hit_not_the_newer_attempts(cut: str, undo: str) -> None:
    plan = parse_scenario(
        {
            "name": "undo",
            "description": "undo",
            "workload": [{"task": TASK}],
            "faults": [
                {"kind": cut, "when": {"at": 0.0}, "target": {"task": 0}},
                {"kind": undo, "when": {"after_fault": 0, "delay": 1}, "target": {"task": 0}},
            ],
        },
        "undo.yaml",
    )
    backend, ledger = Backend(), Ledger()
    dispatches = workload.plan(plan)
    chaos = Nemesis(plan.faults, dispatches, backend, ledger, 1, log=lambda _: None)  # type: ignore[arg-type]
    task_id = dispatches[0].task_id
    first = LiveAttempt(task_id, 1, WORKER, 100)
    chaos.tick(0.0, {1: first})
    # RabbitMQ requeued the frozen worker's message: attempt 2 runs on the other worker.
    chaos.tick(1.0, {1: first, 2: LiveAttempt(task_id, 2, OTHER, 200)})
    (_, frozen, how), (_, thawed, back) = backend.calls
    assert (frozen, thawed) == (WORKER, WORKER) and back is not how
    undone = ledger.events[-1]
    assert (undone["kind"], undone["worker"], undone["pid"]) == (undo, WORKER, 100)
