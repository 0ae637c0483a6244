"""The ``worker_crashes`` finding: worker main processes that died when nothing we did killed them,
and workers Celery declared dead (``Unrecoverable error``) whose shutdown had not ended by the run's
end (a ``worker_hung`` event: such a worker takes no more work; its shutdown can hang for good).

Pure, like the checker: it reads only the history. A ``worker_exit`` event (written by the
harness when it sees a worker's main process gone) counts as a crash unless a fault carried out on
that worker earlier in the history was one whose effect takes the whole worker down. The fault
event says so itself: ``blame: "worker"`` (a kill_worker, a terminate, and a kill_child on a pool
without child processes, which kills the whole worker). No list of kinds is kept here to drift
from what the fault kinds (:mod:`celery_chaos.faults`) actually did; the one thing read from the
registry is the kinds whose deaths are blamed on the worker's whole memory cgroup.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery_chaos.core import exit_reasons
from celery_chaos.core import history as h
from celery_chaos.faults.base import INJECTED, MISSED
from celery_chaos.faults.registry import FAULTS


@dataclass
class WorkerCrash:
    """A worker main process that exited (or hung in its shutdown) with no killing fault aimed
    at it."""

    worker: str | None
    pid: int | None
    exitcode: int | None
    signal: int | None
    reason_code: str
    reason: str
    log_tail: list[str]


def _whole_cgroup(event: h.Event) -> bool:
    """An OOM fault lowers the memory limit of the worker's whole cgroup: the kernel may kill
    any of its processes, the main one included, so a worker exit after one is the harness's
    doing too (the fault event blames no process: the kernel chose it)."""
    kind = FAULTS.get(str(event.get("kind")))
    return kind is not None and kind.blame == "cgroup"


def kills_whole_worker(event: h.Event) -> bool:
    """Whether a ``fault`` event's carried-out effect may have ended its worker's main process."""
    if event.get("status") == MISSED:
        return False
    return event.get("blame") == "worker" or _whole_cgroup(event)


def killed_worker(event: h.Event) -> bool:
    """Whether a ``fault`` event certainly ended its worker: injected, blaming the whole worker
    (an oom only may: the kernel chose the process, and a ``worker_exit`` says if it was)."""
    return (
        event.get("status") == INJECTED and kills_whole_worker(event) and not _whole_cgroup(event)
    )


def crash_text(crash: WorkerCrash) -> str:
    why = f": {crash.log_tail[-1]}" if crash.log_tail else ""
    return f"worker {crash.worker} pid {crash.pid} ({crash.reason}){why}"


# A worker's end as the history records it: its process exited, or Celery declared it dead
# ("Unrecoverable error") and its process still ran when the run ended (run.loop).
ENDINGS = (h.WORKER_EXIT, h.WORKER_HUNG)


def _reason_code(event: h.Event) -> str:
    if event["type"] == h.WORKER_HUNG:
        return exit_reasons.ExitReason.SHUTDOWN_HUNG.value
    number = event.get("signal")
    if number is not None:
        return exit_reasons.by_signal(number)
    return exit_reasons.by_exit_status(event.get("exitcode") or 0)


def worker_crashes(history: list[h.Event]) -> list[WorkerCrash]:
    """Every ``worker_exit`` or ``worker_hung`` not preceded (in history order) by a fault
    carried out (not ``missed``) on that worker whose effect kills the whole worker
    (:func:`kills_whole_worker`). One per worker: a hung worker that exits before the history
    is read has both events."""
    hit: set[str] = set()
    crashes = []
    for event in history:
        if event["type"] == h.FAULT:
            if kills_whole_worker(event):
                hit.add(event.get("worker") or "")
        elif event["type"] in ENDINGS and event.get("worker") not in hit:
            hit.add(event.get("worker") or "")
            code = _reason_code(event)
            crashes.append(
                WorkerCrash(
                    worker=event.get("worker"),
                    pid=event.get("pid"),
                    exitcode=event.get("exitcode"),
                    signal=event.get("signal"),
                    reason_code=code,
                    reason=exit_reasons.describe(code),
                    log_tail=list(event.get("log_tail") or []),
                )
            )
    return crashes
