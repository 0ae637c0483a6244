"""The run's last look records a worker Celery declared dead that still runs (``worker_hung``):
the checker counts exits, and a worker whose shutdown hung never exits (run.loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.placements.base import Worker
from celery_chaos.run.loop import Loop

DEAD = ["[... CRITICAL/MainProcess] Unrecoverable error: PreconditionFailed(406, ...)"]
BUSY = ["[... INFO/MainProcess] Task sample_tasks.tasks.send_email[x] received"]


@dataclass
class Handle:
    pid: int


@dataclass
class Backend:
    workers: list[Worker]
    logs: dict[str, list[str]]

    def worker_log(self, worker: Worker) -> list[str]:
        return self.logs[worker.name]


@dataclass
class Ledger:
    recorded: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record(self, kind: str, **fields: Any) -> None:
        self.recorded.append((kind, fields))


def last_look(logs: dict[str, list[str]], exited: set[str]) -> list[tuple[str, dict[str, Any]]]:
    workers = [Worker(i, name, Handle(100 + i)) for i, name in enumerate(logs)]
    loop = Loop.__new__(Loop)  # only what _record_hung_workers reads
    loop.backend, loop.ledger, loop.exited = Backend(workers, logs), Ledger(), exited
    loop._record_hung_workers()
    return loop.ledger.recorded


def test_a_live_worker_celery_declared_dead_is_recorded_hung() -> None:
    recorded = last_look({"w0": DEAD, "w1": BUSY}, exited=set())
    assert recorded == [(h.WORKER_HUNG, {"worker": "w0", "pid": 100, "log_tail": DEAD})]


def test_a_worker_that_exited_is_not_recorded_again() -> None:
    assert last_look({"w0": DEAD}, exited={"w0"}) == []
