"""The nemesis: decides *when* each fault fires (its trigger) and carries it out via the backend.

Triggers:
- ``{task: N, checkpoint: K}``: when task N's attempt (1 by default) reaches checkpoint K. The
  checkpoint is armed as a breakpoint before dispatch, so the task waits there until the fault
  has fired: the fault lands exactly at K, every run.
- ``{at: S}``: S seconds after the workload started.
- ``{after_fault: I, delay: D}``: D seconds after fault I fired.
- ``{random: {min, max}}``: a time drawn from the run's seeded RNG; the same seed replays the
  same schedule (printed at the start of every run).

A fault may leave later steps (``FaultResult.then``: an ``evict``'s SIGKILL once its grace ran
out): they are carried out here when due, one more event of the same fault each, so no handler
waits out a grace period while other faults are due; a step aimed at a worker whose exit is in
the history first is dropped.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from celery_chaos.core import history as h
from celery_chaos.core.scenario_parts import Fault
from celery_chaos.faults.base import (
    INJECTED,
    INJECTION_ERROR,
    MISSED,
    WHOLE_WORKER_POOLS,
    Aim,
    FaultPrimitives,
    FaultResult,
    FollowUp,
)
from celery_chaos.faults.registry import FAULTS, carry_out
from celery_chaos.ledger import Ledger
from celery_chaos.placements.base import Worker
from celery_chaos.run.watcher import LiveAttempt
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


class Placement(FaultPrimitives, Protocol):
    """What the nemesis uses of a backend: the fault primitives, and its workers."""

    workers: list[Worker]

    def worker_named(self, name: str | None) -> Worker | None: ...


class Nemesis:
    def __init__(
        self,
        faults: list[Fault],
        dispatches: list[Dispatch],
        backend: Placement,
        ledger: Ledger,
        seed: int,
        log: Callable[[str], None] = print,
    ):
        self.rng = random.Random(seed)
        self.dispatches = dispatches
        self.backend = backend
        self.ledger = ledger
        self.log = log
        self.planned = [self._plan(i, fault) for i, fault in enumerate(faults)]
        # A fired fault's later steps (an evict's SIGKILL): (due offset, its fault, the step).
        self.pending: list[tuple[float, PlannedFault, FollowUp]] = []

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
        pool = self.backend.scenario.workers.pool
        note = f" (pool {pool}: kills the whole worker)" if pool in WHOLE_WORKER_POOLS else ""
        return [
            p.describe() + (note if FAULTS[p.fault.kind].kills_task_process else "")
            for p in self.planned
        ]

    @property
    def done(self) -> bool:
        return all(p.fired for p in self.planned) and not self.pending

    def arm(self) -> None:
        """Arm checkpoint breakpoints; must happen before the workload is dispatched."""
        for planned in self.planned:
            if planned.breakpoint:
                self.ledger.arm_breakpoint(planned.breakpoint)

    def observe(self, event: h.Event, now: float) -> None:
        """Make checkpoint-triggered faults due when their checkpoint shows up in the history;
        a worker's exit drops the later steps aimed at it (it ended on its own first)."""
        if event["type"] == h.WORKER_EXIT:
            gone = event.get("worker")
            self.pending = [p for p in self.pending if p[2].worker.name != gone]
        if event["type"] != h.CHECKPOINT:
            return
        point = h.breakpoint_id(event["task_id"], event["name"], event["attempt"])
        for planned in self.planned:
            if planned.breakpoint == point and planned.due is None:
                planned.due = now + planned.fault.when.delay

    def tick(self, now: float, running: Mapping[Any, LiveAttempt] | None = None) -> None:
        """Fire every fault that is due at time offset ``now``; ``running`` are the attempts
        running right now (the watcher's view, handed over by the loop)."""
        for planned in self.planned:
            if planned.fired:
                continue
            after = planned.fault.when.after_fault
            if after is not None and planned.due is None and self.planned[after].fired:
                planned.due = self.planned[after].fired_at + planned.fault.when.delay
            if planned.due is not None and now >= planned.due:
                self._fire(planned, now, running or {})
        for step in [p for p in self.pending if now >= p[0]]:
            self.pending.remove(step)
            self._follow_up(step[1], step[2], now, running or {})

    def release_all(self) -> None:
        """Let every task still parked at a breakpoint go on (end of run, or an aborted fault)."""
        for planned in self.planned:
            if planned.breakpoint:
                self.ledger.release_breakpoint(planned.breakpoint)

    def give_up(self, now: float) -> None:
        """Record every fault whose trigger never came (a checkpoint never reached, a run that
        ended first) as ``missed``: the history then shows the fault did not happen. Later
        steps not due yet are dropped (the worker is stopped with the run)."""
        self.pending.clear()
        for planned in self.planned:
            if not planned.fired:
                planned.fired, planned.fired_at = True, now
                planned.detail = self.ledger.record(
                    h.FAULT,
                    fault=planned.index,
                    kind=planned.fault.kind,
                    status=MISSED,
                    detail="its trigger did not happen before the run ended",
                    fired=False,
                    hits=[],
                    offset=round(now, 4),
                )

    # --- carrying faults out ----------------------------------------------------------
    def _aim(self, fault: Fault, running: Mapping[Any, LiveAttempt]) -> Aim:
        attempt = None
        if FAULTS[fault.kind].needs_task or fault.target_task() is not None:
            attempt = self._target_attempt(fault, running)
        worker = self._undone_worker(fault) or self._target_worker(fault, attempt)
        on_worker = [a for a in running.values() if worker and a.worker == worker.name]
        if attempt is not None and worker is not None and attempt.worker != worker.name:
            same = [a for a in on_worker if a.task_id == attempt.task_id]  # its attempt there
            attempt = max(same, key=lambda a: a.attempt) if same else None
        return Aim(worker, attempt, on_worker, list(running.values()))

    def _undone_worker(self, fault: Fault) -> Worker | None:
        """For a resume/heal without ``target.worker``: the worker the latest carried-out
        pause/partition hit (of the same target task, if it names one), as recorded: not
        wherever the target task runs by then (a requeued attempt may run on another worker
        while the paused one stays frozen)."""
        undoes = FAULTS[fault.kind].undoes
        if undoes is None or fault.target.worker is not None:
            return None
        done = sorted(
            (p for p in self.planned if p.fired and p.fault.kind == undoes),
            key=lambda p: p.fired_at or 0.0,
        )
        hit = [p.detail for p in done if p.detail.get("status") == INJECTED]
        task = fault.target_task()
        if task is not None:
            task_id = self.dispatches[task].task_id
            hit = [d for d in hit if d.get("task_id") == task_id] or hit
        names = [d["worker"] for d in hit if d.get("worker")]
        return self.backend.worker_named(names[-1]) if names else None

    def _target_attempt(
        self, fault: Fault, running: Mapping[Any, LiveAttempt]
    ) -> LiveAttempt | None:
        task = fault.target_task()
        if task is not None:
            task_id = self.dispatches[task].task_id
            found = [a for a in running.values() if a.task_id == task_id]
            return max(found, key=lambda a: a.attempt) if found else None
        candidates = sorted(running.values(), key=lambda a: (a.task_id, a.attempt))
        return self.rng.choice(candidates) if candidates else None

    def _target_worker(self, fault: Fault, attempt: LiveAttempt | None) -> Worker | None:
        """The named worker, else the worker running the target task, else the first one. A
        fault aimed at a task that is not running (finished, not started) has no worker: it is
        ``missed``, never carried out on some other worker."""
        workers = self.backend.workers
        if fault.target.worker is not None:
            return next((w for w in workers if w.index == fault.target.worker), None)
        if attempt is not None:
            return self.backend.worker_named(attempt.worker)
        if fault.target_task() is not None:
            return None
        return workers[0] if workers else None

    def _fire(self, planned: PlannedFault, now: float, running: Mapping[Any, LiveAttempt]) -> None:
        planned.fired, planned.fired_at = True, now
        fault = planned.fault
        aim = self._aim(fault, running)
        result = carry_out(self.backend, fault, aim, lambda: self._release(planned))
        self._release(planned)
        planned.detail = self._record(planned, result, aim, now)

    def _follow_up(
        self, planned: PlannedFault, step: FollowUp, now: float, running: Mapping[Any, LiveAttempt]
    ) -> None:
        """Carry out a fired fault's later step on its worker; recorded as one more event of
        that fault, with the step's ``stage``, unless it did nothing."""
        on_worker = [a for a in running.values() if a.worker == step.worker.name]
        aim = Aim(step.worker, None, on_worker, list(running.values()))
        try:
            result = step.apply(aim)
        except Exception as error:
            result = FaultResult(INJECTION_ERROR, f"{type(error).__name__}: {error}")
        if isinstance(result, FollowUp):  # not yet (a worker not ready): that step, later
            self.pending.append((now + result.delay, planned, result))
        elif result is not None:
            self._record(planned, result, aim, now, stage=step.stage)

    def _record(
        self, planned: PlannedFault, result: FaultResult, aim: Aim, now: float, **extra: Any
    ) -> h.Event:
        """The ``fault`` event of what carrying out ``planned`` (or a later step) did; its
        later steps are scheduled from now."""
        worker, attempt = result.worker or aim.worker, aim.attempt
        event = self.ledger.record(
            h.FAULT,
            fault=planned.index,
            kind=planned.fault.kind,
            status=result.status,
            worker=worker.name if worker else None,
            task_id=attempt.task_id if attempt else None,
            pid=attempt.pid if attempt else None,
            hits=result.hits,
            detail=result.detail,
            blame=result.blame,
            cause=result.cause,
            offset=round(now, 4),
            **extra,
        )
        self.pending += [(now + step.delay, planned, step) for step in result.then]
        line = f"fault {planned.index} {planned.fault.kind}: {result.status}: {result.detail}"
        self.log(f"[t={now:6.2f}s] {line}")
        return event

    def _release(self, planned: PlannedFault) -> None:
        if planned.breakpoint:
            self.ledger.release_breakpoint(planned.breakpoint)
