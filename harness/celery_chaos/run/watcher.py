"""Watches the processes running attempts and records, in the history, when and why one died.

The agent cannot report its own SIGKILL, so the harness notices the death (the pid is gone) and
writes a ``process_exit`` event naming the cause it can prove: the kernel's OOM counter moved,
a fault we injected hit that process or worker (the ``fault`` event in the history says so), or
the worker itself exited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from celery_chaos.core import exit_reasons as reasons
from celery_chaos.core import history as h
from celery_chaos.ledger import Ledger
from celery_chaos.placements.base import Placement

DEFAULT_WORKER_LOST_WAIT = 10.0  # Celery's own default for worker_lost_wait
MARGIN = 1.0  # a dead attempt's report is awaited for worker_lost_wait + this


@dataclass
class LiveAttempt:
    task_id: str
    attempt: int
    worker: str | None
    pid: int


class Watcher:
    def __init__(
        self, backend: Placement, ledger: Ledger, worker_lost_wait: float = DEFAULT_WORKER_LOST_WAIT
    ):
        self.backend = backend
        self.ledger = ledger
        self.worker_lost_wait = worker_lost_wait
        self.running: dict[tuple[str, int], LiveAttempt] = {}
        # Attempts that died while their worker lived on: the worker main process may still
        # report them (WorkerLostError) or requeue them, for up to ``worker_lost_wait`` seconds.
        self.unresolved: dict[str, tuple[LiveAttempt, float]] = {}
        self._latest_attempt: dict[str, int] = {}
        self._reported_failed: set[str] = set()
        self._blame: dict[object, str] = {}  # pid or worker name -> the fault that hit it
        self._oom_seen: dict[str, int] = {}
        self._time_limited: set[str] = set()  # tasks Celery reported TimeLimitExceeded for

    def observe(self, event: h.Event) -> None:
        kind = event["type"]
        if kind == h.ATTEMPT_START:
            key = (event["task_id"], event["attempt"])
            self.running[key] = LiveAttempt(
                event["task_id"], event["attempt"], event.get("worker"), event["pid"]
            )
            self.unresolved.pop(event["task_id"], None)
            latest = self._latest_attempt.get(event["task_id"], 0)
            self._latest_attempt[event["task_id"]] = max(latest, event["attempt"])
        elif kind in (h.ATTEMPT_END, h.PROCESS_EXIT) and event.get("attempt") is not None:
            self.running.pop((event["task_id"], event["attempt"]), None)
        elif kind == h.TASK_FAILURE:
            self.unresolved.pop(event["task_id"], None)
            self._reported_failed.add(event["task_id"])
            if event.get("exc_type") == "TimeLimitExceeded":
                self._time_limited.add(event["task_id"])
        elif kind == h.FAULT and event.get("blame") in ("pid", "worker"):
            # The fault event names whom it hit: a death of that pid/worker is its doing.
            self._blame[event[event["blame"]]] = event["cause"]

    def _reason(self, attempt: LiveAttempt) -> tuple[str, str]:
        """Why the attempt's process died: (a code of ``core.exit_reasons``, the human text)."""
        worker = self.backend.worker_named(attempt.worker)
        kills = self.backend.oom_kills(worker)
        if worker is not None and kills > self._oom_seen.get(worker.name, 0):
            self._oom_seen[worker.name] = kills
            text = "oom_kill: the kernel OOM killer killed it (cgroup memory limit)"
            return reasons.ExitReason.OOM_KILL.value, text
        for target in (attempt.pid, attempt.worker):
            if target in self._blame:  # "SIGKILL by kill_child fault", ...
                text = self._blame[target]
                return reasons.by_fault_signal(text.split()[0]), text
        if attempt.task_id in self._time_limited:  # Celery reports it before it kills
            code = reasons.ExitReason.TIME_LIMIT.value
            return code, reasons.describe(code)
        worker_exit = self.backend.worker_exit_reason(worker)
        if reasons.is_code(worker_exit):
            return str(worker_exit), f"its worker {reasons.describe(str(worker_exit))}"
        pool_exit = None if worker_exit else self.backend.pool_exit_reason(worker, attempt.pid)
        if pool_exit is not None:
            return pool_exit, reasons.describe(pool_exit)
        code = reasons.ExitReason.WORKER_LOST.value
        return code, worker_exit or "process exited with no fault injected"

    def check(self) -> None:
        """Record a ``process_exit`` for every running attempt whose process has died."""
        for key, attempt in list(self.running.items()):
            worker = self.backend.worker_named(attempt.worker)
            if self.backend.process_alive(worker, attempt.pid):
                continue
            code, text = self._reason(attempt)
            self.ledger.record(
                h.PROCESS_EXIT,
                task_id=attempt.task_id,
                attempt=attempt.attempt,
                pid=attempt.pid,
                worker=attempt.worker,
                reason=text,
                reason_code=code,
            )
            del self.running[key]
            if not self._resolved(attempt):
                self.unresolved[attempt.task_id] = (attempt, time.monotonic())

    def _resolved(self, attempt: LiveAttempt) -> bool:
        """Whether the worker already dealt with this death before we noticed it (a later
        attempt started, or the failure was reported)."""
        later = self._latest_attempt.get(attempt.task_id, 0) > attempt.attempt
        return later or attempt.task_id in self._reported_failed

    def settled(self) -> bool:
        """True when no dead attempt can still be reported or requeued by its worker."""
        now = time.monotonic()
        for task_id, (attempt, died) in list(self.unresolved.items()):
            worker = self.backend.worker_named(attempt.worker)
            worker_gone = worker is None or self.backend.worker_exit_reason(worker) is not None
            if worker_gone or now - died > self.worker_lost_wait + MARGIN:
                del self.unresolved[task_id]
        return not self.running and not self.unresolved
