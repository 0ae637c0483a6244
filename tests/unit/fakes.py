"""Narrow fakes for unit tests: each answers only the calls the code under test makes (named in
its docstring), with real ``Worker`` and ``Scenario`` objects, so a test says what it stands in
for instead of handing over a bag of lambdas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from celery_chaos.placements.base import Worker, WorkerExit

from tests.unit.inline_scenario import scenario


class Recorder:
    """A ledger that keeps what is recorded (``record``) and has nothing new to read (``poll``)."""

    _read_offset = 0

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, event_type: str, **fields: Any) -> dict[str, Any]:
        self.events.append({"type": event_type, **fields})
        return self.events[-1]

    def poll(self) -> list[dict[str, Any]]:
        return []


@dataclass
class WatchedPlacement:
    """What the watcher (run/watcher.py) asks a placement about one worker, ``w0``: which worker
    has a name, whether a pid lives, and how a process or the worker ended."""

    alive: set[int] = field(default_factory=set)
    oom: int = 0
    exit_reason: str | None = None
    pool_exits: dict[int, str] = field(default_factory=dict)
    worker: Worker = field(default_factory=lambda: Worker(0, "w0", None))

    def worker_named(self, name: str | None) -> Worker | None:
        return self.worker if name == self.worker.name else None

    def process_alive(self, _worker: Worker | None, pid: int) -> bool:
        return pid in self.alive

    def oom_kills(self, _worker: Worker | None) -> int:
        return self.oom

    def worker_exit_reason(self, _worker: Worker) -> str | None:
        return self.exit_reason

    def pool_exit_reason(self, _worker: Worker, pid: int) -> str | None:
        return self.pool_exits.get(pid)


class ReapingPlacement:
    """What the run loop (run/loop.py) asks a placement when no worker is started: the
    scenario's settings, and the worker exits it reaped, one list per step (none by default)."""

    def __init__(self, exits: list[list[WorkerExit]] | None = None) -> None:
        self.scenario = scenario()
        self.exits = exits or []

    def reap_worker_exits(self, force: bool = False) -> list[WorkerExit]:
        return self.exits.pop(0) if self.exits else []


@dataclass
class StartedWorkers:
    """A placement's started workers: all the loop's due-time rule (run/loop.py) reads of it."""

    workers: list[Worker]
