"""The nemesis: decides *when* each fault fires (its trigger) and carries it out via the backend.

Triggers:
- ``{task: N, checkpoint: K}``: when task N's attempt (1 by default) reaches checkpoint K. The
  checkpoint is armed as a breakpoint before dispatch, so the task waits there until the fault
  has fired: the fault lands exactly at K, every run.
- ``{at: S}``: S seconds after the workload started.
- ``{after_fault: I, delay: D}``: D seconds after fault I fired.
- ``{random: {min, max}}``: a time drawn from the run's seeded RNG; the same seed replays the
  same schedule (printed at the start of every run).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery_chaos.backends.base import Backend, Worker
from celery_chaos.core import history as h
from celery_chaos.core.scenario import Fault, parse_size
from celery_chaos.ledger import Ledger
from celery_chaos.run.watcher import LiveAttempt, Watcher
from celery_chaos.run.workload import Dispatch


@dataclass
class PlannedFault:
    index: int
    fault: Fault
    at: float | None = None  # resolved time offset for at/random triggers
    breakpoint: str | None = None  # armed checkpoint for checkpoint triggers
    due: float | None = None  # time offset at which it fires, once known
    fired: bool = False
    fired_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        f, when = self.fault, self.fault.when
        if when.checkpoint is not None:
            trigger = f"when task {when.task} attempt {when.attempt} reaches {when.checkpoint!r}"
        elif when.after_fault is not None:
            trigger = f"{when.delay}s after fault {when.after_fault}"
        else:
            trigger = f"at t={self.at:.3f}s"
        if when.checkpoint is not None and when.delay:
            trigger += f" + {when.delay}s"
        return f"fault {self.index}: {f.kind} {trigger}"


class Nemesis:
    def __init__(
        self,
        faults: list[Fault],
        dispatches: list[Dispatch],
        backend: Backend,
        ledger: Ledger,
        watcher: Watcher,
        seed: int,
        log: Callable[[str], None] = print,
    ):
        self.rng = random.Random(seed)
        self.dispatches = dispatches
        self.backend = backend
        self.ledger = ledger
        self.watcher = watcher
        self.log = log
        self.planned = [self._plan(i, fault) for i, fault in enumerate(faults)]

    def _plan(self, index: int, fault: Fault) -> PlannedFault:
        when = fault.when
        planned = PlannedFault(index, fault)
        if when.at is not None:
            planned.at = planned.due = when.at + when.delay
        elif when.random is not None:
            drawn = self.rng.uniform(when.random.min, when.random.max)
            planned.at = planned.due = drawn + when.delay
        elif when.checkpoint is not None:
            task_id = self.dispatches[when.task].task_id
            planned.breakpoint = h.breakpoint_id(task_id, when.checkpoint, when.attempt)
        return planned

    def add(self, fault: Fault) -> PlannedFault:
        """Plan one more fault after construction and arm its checkpoint at once (the pytest
        fixtures add faults while a test runs; a scenario plans all of them up front)."""
        planned = self._plan(len(self.planned), fault)
        self.planned.append(planned)
        if planned.breakpoint:
            self.ledger.arm_breakpoint(planned.breakpoint)
        return planned

    @property
    def schedule(self) -> list[str]:
        return [p.describe() for p in self.planned]

    @property
    def done(self) -> bool:
        return all(p.fired for p in self.planned)

    def arm(self) -> None:
        """Arm checkpoint breakpoints; must happen before the workload is dispatched."""
        for planned in self.planned:
            if planned.breakpoint:
                self.ledger.arm_breakpoint(planned.breakpoint)

    def observe(self, event: h.Event, now: float) -> None:
        """Make checkpoint-triggered faults due when their checkpoint shows up in the history."""
        if event["type"] != h.CHECKPOINT:
            return
        point = h.breakpoint_id(event["task_id"], event["name"], event["attempt"])
        for planned in self.planned:
            if planned.breakpoint == point and planned.due is None:
                planned.due = now + planned.fault.when.delay

    def tick(self, now: float) -> None:
        """Fire every fault that is due at time offset ``now``."""
        for planned in self.planned:
            if planned.fired:
                continue
            after = planned.fault.when.after_fault
            if after is not None and planned.due is None and self.planned[after].fired:
                planned.due = self.planned[after].fired_at + planned.fault.when.delay
            if planned.due is not None and now >= planned.due:
                self._fire(planned, now)

    def release_all(self) -> None:
        """Let every task still parked at a breakpoint go on (end of run, or an aborted fault)."""
        for planned in self.planned:
            if planned.breakpoint:
                self.ledger.release_breakpoint(planned.breakpoint)

    # --- carrying faults out ----------------------------------------------------------
    def _target_attempt(self, fault: Fault) -> LiveAttempt | None:
        task = fault.target_task()
        if task is not None:
            return self.watcher.attempt_of(self.dispatches[task].task_id)
        running = sorted(self.watcher.running.values(), key=lambda a: (a.task_id, a.attempt))
        return self.rng.choice(running) if running else None

    def _target_worker(self, fault: Fault, attempt: LiveAttempt | None) -> Worker | None:
        workers = self.backend.workers
        if fault.target.worker is not None:
            return next((w for w in workers if w.index == fault.target.worker), None)
        if attempt is not None:
            return self.backend.worker_named(attempt.worker)
        return workers[0] if workers else None

    def _fire(self, planned: PlannedFault, now: float) -> None:
        planned.fired, planned.fired_at = True, now
        fault = planned.fault
        needs_task = fault.kind in ("kill_child", "oom")
        attempt = (
            self._target_attempt(fault) if needs_task or fault.target_task() is not None else None
        )
        worker = self._target_worker(fault, attempt)
        release = self._releaser(planned)
        try:
            status, detail, hits = self._apply(fault, worker, attempt, release)
        except Exception as error:  # a failed injection is recorded, never hidden
            status, detail, hits = "failed", f"{type(error).__name__}: {error}", []
        release()
        event = self.ledger.record(
            h.FAULT,
            fault=planned.index,
            kind=fault.kind,
            status=status,
            worker=worker.name if worker else None,
            task_id=attempt.task_id if attempt else None,
            pid=attempt.pid if attempt else None,
            hits=hits,
            detail=detail,
            offset=round(now, 4),
        )
        planned.detail = event
        self.log(f"[t={now:6.2f}s] fault {planned.index} {fault.kind}: {status}: {detail}")

    def _releaser(self, planned: PlannedFault) -> Callable[[], None]:
        def release() -> None:
            if planned.breakpoint:
                self.ledger.release_breakpoint(planned.breakpoint)

        return release

    def _apply(
        self,
        fault: Fault,
        worker: Worker | None,
        attempt: LiveAttempt | None,
        release: Callable[[], None],
    ) -> tuple[str, str, list[dict[str, Any]]]:
        kind, backend = fault.kind, self.backend
        if kind == "start_worker":
            started = backend.start_worker()
            return "injected", f"started {started.name}", []
        if kind in ("kill_child", "oom") and attempt is None:
            return "skipped", "no running attempt of the target task", []
        if kind == "restart_broker":
            return "injected", backend.restart_broker(), []
        if worker is None:
            return "skipped", "no worker to target", []
        hit = [{"task_id": a.task_id, "attempt": a.attempt} for a in self._on_worker(worker)]
        if kind == "kill_child":
            assert attempt is not None
            self.watcher.blame(attempt.pid, "SIGKILL by kill_child fault")
            hits = [{"task_id": attempt.task_id, "attempt": attempt.attempt}]
            return "injected", backend.kill_pool_process(worker, attempt.pid), hits
        if kind == "kill_worker":
            self.watcher.blame(worker.name, "SIGKILL by kill_worker fault (whole worker)")
            return "injected", backend.kill_worker(worker), hit
        if kind == "restart_worker":
            self.watcher.blame(worker.name, "SIGKILL by restart_worker fault")
            detail = backend.kill_worker(worker)
            started = backend.start_worker()
            return "injected", f"{detail}; started {started.name}", hit
        if kind == "oom":
            assert attempt is not None
            detail = backend.oom(worker, parse_size(fault.headroom), fault.wait, release)
            died = not backend.process_alive(worker, attempt.pid)
            hits = [{"task_id": attempt.task_id, "attempt": attempt.attempt}] if died else []
            return "injected", detail, hits
        if kind in ("terminate", "quit"):
            signame = "SIGTERM" if kind == "terminate" else "SIGQUIT"
            self.watcher.blame(worker.name, f"{signame} by {kind} fault")
            return "injected", backend.signal_worker(worker, signame), []
        if kind in ("pause", "resume"):
            return "injected", backend.pause_worker(worker, paused=kind == "pause"), []
        if kind in ("partition", "heal"):
            return "injected", backend.partition(worker, connected=kind == "heal"), []
        return "skipped", f"unknown fault kind {kind}", []

    def _on_worker(self, worker: Worker) -> list[LiveAttempt]:
        return [a for a in self.watcher.running.values() if a.worker == worker.name]
