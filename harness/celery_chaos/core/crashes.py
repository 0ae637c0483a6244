"""The ``worker_crashes`` finding: worker main processes that died when nothing we did killed them.

Pure, like the checker: it reads only the history. A ``worker_exit`` event (written by the
harness when it sees a worker's main process gone) counts as a crash unless a fault of a killing
kind was carried out on that worker earlier in the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery_chaos.core import exit_reasons
from celery_chaos.core import history as h


@dataclass
class WorkerCrash:
    """A worker main process that exited with no killing fault aimed at it."""

    worker: str | None
    pid: int | None
    exitcode: int | None
    signal: int | None
    reason_code: str
    reason: str
    log_tail: list[str]


# Faults that end a worker's main process on purpose: its exit after one is not a crash.
KILLING_FAULTS = frozenset({"kill_worker", "restart_worker", "terminate", "quit", "oom"})


def crash_text(crash: WorkerCrash) -> str:
    why = f": {crash.log_tail[-1]}" if crash.log_tail else ""
    return f"worker {crash.worker} pid {crash.pid} ({crash.reason}){why}"


def worker_crashes(history: list[h.Event]) -> list[WorkerCrash]:
    """Every ``worker_exit`` not preceded (in history order) by a killing fault that was carried
    out (not ``skipped``) on that worker."""
    hit: set[str] = set()
    crashes = []
    for event in history:
        if event["type"] == h.FAULT:
            if event.get("kind") in KILLING_FAULTS and event.get("status") != "skipped":
                hit.add(event.get("worker") or "")
        elif event["type"] == h.WORKER_EXIT and event.get("worker") not in hit:
            number = event.get("signal")
            code = (
                exit_reasons.by_signal(number)
                if number is not None
                else exit_reasons.by_exit_status(event.get("exitcode") or 0)
            )
            crashes.append(
                WorkerCrash(
                    worker=event.get("worker"),
                    pid=event.get("pid"),
                    exitcode=event.get("exitcode"),
                    signal=number,
                    reason_code=code,
                    reason=exit_reasons.describe(code),
                    log_tail=list(event.get("log_tail") or []),
                )
            )
    return crashes
