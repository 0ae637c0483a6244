"""The checker: history + final broker state in, verdicts out. Pure: no I/O, no clock.

Semantics, per dispatched task (the *outcome*, exactly one of):

- ``ok``: exactly one successful completion and no interrupted attempt. Usually one attempt;
  a task that raised ``Retry`` (``self.retry()``, ``autoretry_for``) and then succeeded is ``ok``
  too (its attempts are listed, and it carries the ``retried`` label): the task asked to run
  again, nothing was taken from it.
- ``recovered``: at least one attempt was *interrupted* (its process died, or the worker lost it:
  it never reported an end), then exactly one successful completion. A task that both retried
  and lost an attempt is ``recovered`` with the ``retried`` label.
- ``duplicate_executions``: completed successfully more than once (e.g. a visibility timeout
  shorter than the task let a second worker run it while the first was still busy).
- ``pending``: never completed, but the message still sits in the broker (queue or unacked set)
  or an attempt is still running: it would come back (after the visibility timeout) or finish.
  Only the broker's state can tell this apart from ``lost``.
- ``dead_lettered``: never completed, not running, and its only message in the broker is a
  *dead letter* (RabbitMQ: a dead-letter exchange moved it, with an ``x-death`` reason such as
  ``delivery_limit``, ``rejected`` or ``expired``, to a queue no worker consumes; the location
  ``dead_letter:<queue>:<reason>:<died in>`` says where and why). It is kept, but parked:
  unlike ``pending`` it will not come back by itself; nothing runs it unless someone moves it
  back to a work queue. A message that is also ready or unacked elsewhere makes it ``pending``.
- ``lost``: never completed, not in the broker and not running: nothing will ever run it again.
  A task Celery marked failed (e.g. ``WorkerLostError``) is lost too: its work never happened.

Labels a task may carry on top of its outcome:

- ``failed``: Celery recorded a failure (the task raised, or the worker main process reported
  ``WorkerLostError``/``TimeLimitExceeded``) and the task never succeeded.
- ``retried``: an attempt ended in ``RETRY`` (the task raised ``Retry``); the next attempt is
  the retry Celery published, not a redelivery.
- ``revoked``: the harness revoked it (``revoke`` event); a revoked task that never ran is
  ``lost`` with this label: nothing was meant to run it.
- ``redelivery_loop``: more deliveries than ``redelivery_threshold`` (a poison message); the
  attempts a ``Retry`` asked for are not counted as deliveries.
- ``dropped_at_delivery_limit``: a ``lost`` task whose current message (the attempts since its
  last ``Retry``, which publishes a new message) was delivered more times than the delivery
  limit N of the queue its last attempt came from (``BrokerState.delivery_limits``; a RabbitMQ
  quorum queue allows N + 1 deliveries, then drops the message), and whose last attempt did not
  end in SUCCESS or FAILURE (those ack it): the broker dropped it at the limit. The history's
  attempts are a lower bound of the broker's count (a prefetched delivery that never started
  counts there too), so a task dropped partly by such deliveries stays plain ``lost``.

Run-wide findings, each counted once per offending item:

- ``duplicate_side_effects``: an effect key applied more than once (idempotent effects that were
  only *attempted* again are listed but not counted).
- ``stuck_locks``: a lock still held at the end that nothing will ever release: its owner has
  no running attempt left and no message of it is in the broker (queue, unacked set, scheduled
  retry; a dead letter does not count). A lock whose owner is ``pending`` in the broker is *not*
  stuck: the agent's ``lock()`` lets an attempt of the same task id reclaim its own lock, so the
  redelivered (or retried) attempt takes it over and releases it. It is listed as held, not
  counted; the ``pending`` task is the finding.
- ``unexpected``: a task id that executed but was never dispatched.
- ``worker_crashes``: a worker main process that exited (``worker_exit``) although no fault
  carried out on that worker before had an effect that takes the whole worker down (its ``fault``
  event blames the worker, ``blame: "worker"``: kill_worker, restart_worker, terminate, quit, and
  kill_child on a pool without child processes; or an oom, which may kill any process of the
  worker's cgroup; :mod:`celery_chaos.core.crashes`): Celery's "Unrecoverable error" after a
  broker restart, a crash in the consumer, a signal.

- ``revoked_but_ran``: a revoked task (``revoke`` event) with an attempt that started after the
  revoke was recorded: the worker should have discarded it (e.g. a restart forgot the revoke
  because ``worker_state_db`` was not set).
- ``invariant_violations`` and ``result_not_stored``: the app's state (``AppState``, which the
  run measured) judged by :mod:`celery_chaos.core.invariants`, whose docstring states them.

Workflows (chain, group, chord; see :mod:`celery_chaos.core.workflows`): each workflow gets one
of ``workflow_completed`` (every member and the chord callback succeeded exactly once),
``workflow_broken`` (a member is lost, so the rest of the chain or the callback never ran),
``workflow_duplicated`` (a member or the callback completed twice) or ``workflow_pending`` (a
member is pending; members waiting on it are ``pending`` too, not ``lost``), counted beside
the per-task verdicts, which apply to every member as to any task.

Redelivery latency: for every interrupted attempt followed by another attempt of the same task,
the time from the interruption (the fault that hit it, else the observed process exit) to the
next attempt's start.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.app_state import AppState
from celery_chaos.core.broker_state import BrokerState, is_dead_letter
from celery_chaos.core.crashes import worker_crashes
from celery_chaos.core.invariants import judge_app_state
from celery_chaos.core.verdicts import (
    DEFAULT_REDELIVERY_THRESHOLD,
    FINDINGS,
    LABELS,
    OUTCOMES,
    RETRY,
    VERDICTS,
    Attempt,
    EffectReport,
    LockReport,
    TaskReport,
    Verdicts,
)
from celery_chaos.core.workflows import (
    revoked_but_ran,
    revoked_ids,
    workflow_reports,
)

TERMINAL = ("SUCCESS", "FAILURE")  # attempt_end states after which Celery acked the message


class _Builder:
    """One pass over the history, gathering per-task, per-lock and per-effect state."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskReport] = {}
        self.unexpected: dict[str, TaskReport] = {}
        self.lock_holder: dict[str, tuple[str, int | None]] = {}
        self.effects: dict[str, list[tuple[str | None, bool]]] = defaultdict(list)
        self.faults: list[dict[str, Any]] = []

    def task(self, task_id: str, name: str = "?") -> TaskReport:
        found = self.tasks.get(task_id) or self.unexpected.get(task_id)
        if found is None:
            found = self.unexpected[task_id] = TaskReport(task_id=task_id, index=None, task=name)
        return found

    def attempt(self, event: h.Event) -> Attempt | None:
        report = self.tasks.get(event.get("task_id")) or self.unexpected.get(event.get("task_id"))
        if report is None or not report.attempts:
            return None
        number = event.get("attempt")
        for attempt in reversed(report.attempts):
            if number is None or attempt.attempt == number:
                return attempt
        return None

    def feed(self, event: h.Event) -> None:
        handler = _HANDLERS.get(event["type"])
        if handler is not None:
            handler(self, event)


def _on_dispatch(b: _Builder, e: h.Event) -> None:
    b.tasks[e["task_id"]] = TaskReport(
        task_id=e["task_id"], index=e.get("index"), task=e.get("task", "?"), dispatched=e["ts"]
    )


def _on_start(b: _Builder, e: h.Event) -> None:
    report = b.task(e["task_id"], e.get("task", "?"))
    report.attempts.append(
        Attempt(
            attempt=e.get("attempt") or len(report.attempts) + 1,
            worker=e.get("worker"),
            pid=e.get("pid"),
            redelivered=bool(e.get("redelivered")),
            started=e["ts"],
            queue=e.get("queue"),
            stores_result=e.get("stores_result") is True,
        )
    )


def _on_end(b: _Builder, e: h.Event) -> None:
    attempt = b.attempt(e)
    if attempt is not None and attempt.ended is None:
        attempt.ended, attempt.state = e["ts"], e.get("state")


def _on_failure(b: _Builder, e: h.Event) -> None:
    report = b.tasks.get(e["task_id"]) or b.unexpected.get(e["task_id"])
    if report is not None:
        report.failures.append(e.get("exc_type") or "?")


def _on_checkpoint(b: _Builder, e: h.Event) -> None:
    attempt = b.attempt(e)
    if attempt is not None:
        attempt.checkpoints += 1
        attempt.last_checkpoint = e.get("name")


def _on_effect(b: _Builder, e: h.Event) -> None:
    b.effects[e["key"]].append((e.get("task_id"), bool(e.get("applied", True))))


def _on_lock_acquired(b: _Builder, e: h.Event) -> None:
    b.lock_holder[e["name"]] = (e["task_id"], e.get("attempt"))


def _on_lock_released(b: _Builder, e: h.Event) -> None:
    if b.lock_holder.get(e["name"], (None,))[0] == e["task_id"]:
        del b.lock_holder[e["name"]]


def _on_fault(b: _Builder, e: h.Event) -> None:
    b.faults.append({k: v for k, v in e.items() if k != "type"})
    for hit in e.get("hits") or []:
        attempt = b.attempt(hit)
        if attempt is not None and attempt.interrupted_by is None and attempt.running:
            attempt.interrupted_by = e.get("fault")
            attempt.died = e["ts"]


def _on_exit(b: _Builder, e: h.Event) -> None:
    attempt = b.attempt(e)
    if attempt is None or attempt.ended is not None:
        return
    if attempt.died is None:
        attempt.died = e["ts"]
    attempt.exit_reason = e.get("reason")
    attempt.exit_reason_code = e.get("reason_code")


_HANDLERS = {
    h.DISPATCH: _on_dispatch,
    h.ATTEMPT_START: _on_start,
    h.ATTEMPT_END: _on_end,
    h.TASK_FAILURE: _on_failure,
    h.CHECKPOINT: _on_checkpoint,
    h.SIDE_EFFECT: _on_effect,
    h.LOCK_ACQUIRED: _on_lock_acquired,
    h.LOCK_RELEASED: _on_lock_released,
    h.FAULT: _on_fault,
    h.PROCESS_EXIT: _on_exit,
}


def _interrupted(report: TaskReport) -> bool:
    """Whether an attempt ended other than by success or a ``Retry`` the task raised itself:
    it died, or it never reported an end (the worker lost it)."""
    return any(a.state not in ("SUCCESS", RETRY) for a in report.attempts)


def _dropped_at_limit(report: TaskReport, limits: dict[str, int]) -> bool:
    """Whether the history proves the broker dropped the task's message at its queue's delivery
    limit (see ``dropped_at_delivery_limit`` in the module docstring)."""
    retried = [i for i, a in enumerate(report.attempts) if a.state == RETRY]
    current = report.attempts[retried[-1] + 1 if retried else 0 :]
    if not current or current[-1].state in TERMINAL or current[-1].queue not in limits:
        return False
    return len(current) > limits[current[-1].queue]


def _outcome(report: TaskReport, successes: int) -> str:
    if successes >= 2:
        return "duplicate_executions"
    if successes == 1:
        return "recovered" if _interrupted(report) else "ok"
    if any(a.running for a in report.attempts):
        return "pending"
    if report.in_broker and all(is_dead_letter(where) for where in report.in_broker):
        return "dead_lettered"
    return "pending" if report.in_broker else "lost"


def _classify(report: TaskReport, redelivery_threshold: int, limits: dict[str, int]) -> None:
    successes = sum(1 for a in report.attempts if a.state == "SUCCESS")
    retries = sum(1 for a in report.attempts if a.state == RETRY)
    report.outcome = _outcome(report, successes)
    if successes == 0 and report.failures:
        report.labels.append("failed")
    if retries:
        report.labels.append("retried")
    if len(report.attempts) - retries > redelivery_threshold:
        report.labels.append("redelivery_loop")
    if report.outcome == "lost" and _dropped_at_limit(report, limits):
        report.labels.append("dropped_at_delivery_limit")
    for interrupted in report.attempts:
        if interrupted.died is None:
            continue
        after = [a.started for a in report.attempts if a.started >= interrupted.died]
        if after:  # the first attempt that began after the interruption is its redelivery
            report.redelivery_latencies.append(round(min(after) - interrupted.died, 4))


def _locks(b: _Builder, held: dict[str, str] | None) -> list[LockReport]:
    """Locks held at the end: the live snapshot when we have it, else what the history says."""
    holders = (
        {name: (owner, None) for name, owner in held.items()} if held is not None else b.lock_holder
    )
    reports = []
    for name, (owner, number) in sorted(holders.items()):
        acquired = b.lock_holder.get(name, (owner, number))
        owner_task = b.tasks.get(owner) or b.unexpected.get(owner)
        reason = _held_because(owner_task)
        reports.append(
            LockReport(
                name,
                owner,
                acquired[1],
                stuck=reason is None,
                reason=reason or "owner has no running attempt and no message in the broker",
            )
        )
    return reports


def _held_because(owner: TaskReport | None) -> str | None:
    """Why a held lock will still be released (None: it never will; see ``stuck_locks``)."""
    if owner is None:
        return None
    if any(a.running for a in owner.attempts):
        return "owner still running"
    waiting = [where for where in owner.in_broker if not is_dead_letter(where)]
    if waiting:
        return (
            f"owner pending in the broker ({', '.join(waiting)}): its redelivered attempt"
            " reclaims the lock"
        )
    return None


def _effects(b: _Builder) -> list[EffectReport]:
    reports = []
    for key, records in sorted(b.effects.items()):
        applied = sum(1 for _, was_applied in records if was_applied)
        tasks = sorted({task_id for task_id, _ in records if task_id})
        reports.append(EffectReport(key, applied, len(records), tasks, duplicated=applied > 1))
    return reports


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The checker allocates a few objects per attempt while a history of up to a million events
    is alive, so Python's cyclic collector rescans that whole heap again and again (measured on a
    1,000,000-event storm history: 6.2 s with it, 1.5 s without). Nothing built here is a cycle
    that must be collected before the checker returns."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check(
    history: list[h.Event],
    broker: BrokerState | None = None,
    held_locks: dict[str, str] | None = None,
    redelivery_threshold: int = DEFAULT_REDELIVERY_THRESHOLD,
    app_state: AppState | None = None,
) -> Verdicts:
    """Turn a history (in ledger order), the final broker/lock state and the app's state as
    the run measured it into verdicts."""
    with _gc_paused():
        verdicts = _check(history, broker, held_locks, redelivery_threshold)
    return judge_app_state(verdicts, app_state)


def _check(
    history: list[h.Event],
    broker: BrokerState | None,
    held_locks: dict[str, str] | None,
    redelivery_threshold: int,
) -> Verdicts:
    broker = broker or BrokerState()
    builder = _Builder()
    for event in history:
        builder.feed(event)
    tasks = sorted(builder.tasks.values(), key=lambda t: (t.index is None, t.index or 0))
    for report in [*tasks, *builder.unexpected.values()]:
        report.in_broker = broker.locations.get(report.task_id, [])
        _classify(report, redelivery_threshold, broker.delivery_limits)
    workflows = workflow_reports(history, builder.tasks)  # may move waiting members to pending
    for task_id in revoked_ids(history):
        if task_id in builder.tasks:
            builder.tasks[task_id].labels.append("revoked")
    locks = _locks(builder, held_locks)
    effects = _effects(builder)
    counts = dict.fromkeys(VERDICTS, 0)
    for report in tasks:
        for verdict in report.verdicts:
            counts[verdict] += 1
    counts["stuck_locks"] = sum(1 for lock in locks if lock.stuck)
    counts["duplicate_side_effects"] = sum(1 for e in effects if e.duplicated)
    counts["unexpected"] = len(builder.unexpected)
    crashes = worker_crashes(history)
    counts["worker_crashes"] = len(crashes)
    revoked_ran = revoked_but_ran(history, builder.tasks)
    counts["revoked_but_ran"] = len(revoked_ran)
    for workflow in workflows:
        counts[workflow.verdict] += 1
    return Verdicts(
        counts,
        tasks,
        locks,
        effects,
        sorted(builder.unexpected),
        builder.faults,
        crashes,
        workflows,
        revoked_ran,
        list(broker.notes),
    )


# The vocabulary and result types live in core.verdicts; callers may import them from here.
__all__ = [
    "OUTCOMES",
    "LABELS",
    "FINDINGS",
    "VERDICTS",
    "DEFAULT_REDELIVERY_THRESHOLD",
    "RETRY",
    "Attempt",
    "TaskReport",
    "LockReport",
    "EffectReport",
    "Verdicts",
    "check",
]
