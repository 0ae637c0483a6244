"""Builders for synthetic histories, shaped like what the harness and the agent really record.

Every builder takes an explicit ``ts`` so tests can state latencies exactly. Event fields follow
``harness/history.py``.
"""

from __future__ import annotations

from typing import Any

from celery_chaos.core import history as h

TASK = "sample_tasks.tasks.work"
WORKER = "w0@chaos-test"

Event = dict[str, Any]


def event(event_type: str, ts: float, **fields: Any) -> Event:
    return {"type": event_type, "ts": ts, **fields}


def dispatch(task_id: str, index: int, ts: float = 0.0, task: str = TASK) -> Event:
    return event(h.DISPATCH, ts, task_id=task_id, task=task, index=index, args=[], kwargs={})


def start(
    task_id: str,
    attempt: int,
    ts: float,
    pid: int = 100,
    worker: str = WORKER,
    redelivered: bool = False,
    task: str = TASK,
    queue: str | None = None,
) -> Event:
    """An attempt's start; ``queue``: the queue its message came from, as the agent records."""
    extra = {} if queue is None else {"queue": queue}
    return event(
        h.ATTEMPT_START,
        ts,
        task_id=task_id,
        task=task,
        attempt=attempt,
        worker=worker,
        pid=pid,
        redelivered=redelivered,
        **extra,
    )


def end(task_id: str, attempt: int, ts: float, state: str = "SUCCESS", pid: int = 100) -> Event:
    return event(h.ATTEMPT_END, ts, task_id=task_id, attempt=attempt, state=state, pid=pid)


def checkpoint(task_id: str, attempt: int, name: str, ts: float, pid: int = 100) -> Event:
    return event(h.CHECKPOINT, ts, task_id=task_id, attempt=attempt, name=name, pid=pid)


def fault(
    index: int, ts: float, hits: list[tuple[str, int]], kind: str = "kill_child", **fields: Any
) -> Event:
    """A fault as the nemesis records it; ``hits`` are the (task_id, attempt) pairs it killed."""
    return event(
        h.FAULT,
        ts,
        fault=index,
        kind=kind,
        status="injected",
        hits=[{"task_id": task_id, "attempt": attempt} for task_id, attempt in hits],
        **fields,
    )


def process_exit(
    task_id: str, attempt: int, ts: float, reason: str = "SIGKILL by kill_child fault"
) -> Event:
    return event(
        h.PROCESS_EXIT, ts, task_id=task_id, attempt=attempt, pid=100, worker=WORKER, reason=reason
    )


def failure(
    task_id: str, ts: float, exc_type: str = "WorkerLostError", attempt: int | None = None
) -> Event:
    """``task_failure``; without ``attempt`` it comes from the worker main process."""
    return event(
        h.TASK_FAILURE,
        ts,
        task_id=task_id,
        attempt=attempt,
        exc_type=exc_type,
        exc=f"{exc_type}()",
        origin="task" if attempt is not None else "worker",
    )


def effect(
    task_id: str, attempt: int, key: str, ts: float, applied: bool = True, idempotent: bool = False
) -> Event:
    return event(
        h.SIDE_EFFECT,
        ts,
        task_id=task_id,
        attempt=attempt,
        key=key,
        applied=applied,
        idempotent=idempotent,
    )


def lock_acquired(
    task_id: str, attempt: int, name: str, ts: float, reclaimed: bool = False
) -> Event:
    return event(
        h.LOCK_ACQUIRED, ts, task_id=task_id, attempt=attempt, name=name, reclaimed=reclaimed
    )


def lock_released(task_id: str, attempt: int, name: str, ts: float) -> Event:
    return event(h.LOCK_RELEASED, ts, task_id=task_id, attempt=attempt, name=name)


def completed(task_id: str, index: int, t0: float = 0.0, duration: float = 1.0) -> list[Event]:
    """A task dispatched at ``t0`` that ran once and succeeded."""
    return [
        dispatch(task_id, index, t0),
        start(task_id, 1, t0 + 0.01),
        end(task_id, 1, t0 + 0.01 + duration),
    ]


def killed(
    task_id: str, index: int, t0: float = 0.0, kill_at: float = 0.5, fault_index: int = 0
) -> list[Event]:
    """A task whose only attempt was SIGKILLed by fault ``fault_index`` at ``kill_at``."""
    return [
        dispatch(task_id, index, t0),
        start(task_id, 1, t0 + 0.01),
        checkpoint(task_id, 1, "step-1", t0 + 0.1),
        fault(fault_index, kill_at, [(task_id, 1)]),
        process_exit(task_id, 1, kill_at + 0.01),
    ]


def worker_exit(
    ts: float,
    worker: str = WORKER,
    pid: int = 50,
    exitcode: int | None = None,
    signal: int | None = None,
    log_tail: list[str] | None = None,
) -> Event:
    """A worker main process gone, as the harness records it (``worker_exit``)."""
    return event(
        h.WORKER_EXIT,
        ts,
        worker=worker,
        pid=pid,
        exitcode=exitcode,
        signal=signal,
        log_tail=log_tail or [],
    )
