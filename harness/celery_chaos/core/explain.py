"""Why each finding happened, in the user's terms: one line per ``pending``, ``lost``,
``duplicate_executions`` and ``redelivery_loop`` task and per stuck lock, naming the settings and
timings that caused it (visibility timeout, Kombu's restore sweep, acks mode, prefetch, time
limits, the run's own length) and what would change it; then one per broken invariant and
``result_not_stored`` task (:mod:`celery_chaos.core.explain_app`).

Pure: verdicts + history + the run's settings in, lines out. It never reads a scenario's
expectations (a line says why a count is what it is, not whether anyone wanted it). The facts it
stands on are in :mod:`celery_chaos.core.explain_facts`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.app_state import AppState
from celery_chaos.core.broker_state import BrokerState
from celery_chaos.core.checker import DEFAULT_REDELIVERY_THRESHOLD, check
from celery_chaos.core.crashes import kills_whole_worker
from celery_chaos.core.explain_app import app_lines
from celery_chaos.core.explain_facts import (
    SAMPLE_APP,
    Facts,
    RunSettings,
    clock_of,
    how_it_died,
    last_attempt,
    sweep_of,
    task_name,
)
from celery_chaos.core.explain_lost import lost_reason
from celery_chaos.core.explain_sweep import sweep_timing
from celery_chaos.core.verdicts import Attempt, TaskReport, Verdicts
from celery_chaos.faults.base import INJECTED, WHOLE_WORKER_POOLS
from celery_chaos.faults.registry import FAULTS

EXPLAINED = ("pending", "lost", "duplicate_executions", "redelivery_loop", "stuck_locks")
# Faults that cut a worker off its broker while its task runs (Kombu restores on reconnect).
NETWORK_FAULTS = tuple(name for name, kind in FAULTS.items() if kind.cuts_connection)


def reported_settings(history: Iterable[h.Event]) -> dict[str, Any]:
    """The settings the first ready worker reported (``worker_ready.settings``)."""
    for event in history:
        if event.get("type") == h.WORKER_READY and isinstance(event.get("settings"), dict):
            return dict(event["settings"])
    return {}


def run_settings(
    scenario: Any, versions: Mapping[str, Any] | None = None, history: Iterable[h.Event] = ()
) -> RunSettings:
    """A scenario's settings as the explanation reads them (never its ``expect``), with the
    values its workers reported for the keys the scenario does not set."""
    return RunSettings(
        celery=dict(scenario.celery),
        reported=reported_settings(history),
        defaults_known=scenario.workers.app == SAMPLE_APP,
        broker=scenario.broker.kind,
        persistence=scenario.broker.persistence,
        pool=scenario.workers.pool,
        timeout=scenario.timeout,
        kombu=(versions or {}).get("kombu"),
        redelivery_threshold=scenario.redelivery_threshold,
    )


def facts_of(verdicts: Verdicts, history: list[h.Event], settings: RunSettings) -> Facts:
    sweep = sweep_of(settings.transport, settings.kombu)
    return Facts(settings, sweep, clock_of(history), tuple(verdicts.broker_notes))


def explain(verdicts: Verdicts, history: list[h.Event], settings: RunSettings) -> list[str]:
    """One line per finding: ``<verdict> <task or lock>: <why>; would change it: <what>``."""
    facts = facts_of(verdicts, history, settings)
    lines = []
    for task in verdicts.tasks:
        for verdict in task.verdicts:
            reason = REASONS.get(verdict)
            if reason is not None:
                lines.append(f"{verdict} {task_name(task)}: {reason(task, facts)}")
    owners = {t.task_id: t for t in verdicts.tasks}
    for lock in verdicts.locks:
        if lock.stuck:
            owner = owners.get(lock.owner or "")
            lines.append(f"stuck_locks lock {lock.name}: {_stuck_reason(owner, facts)}")
    return lines + app_lines(verdicts)


def check_explained(
    snapshot: tuple[list[h.Event], BrokerState, dict[str, str]],
    settings: RunSettings,
    redelivery_threshold: int = DEFAULT_REDELIVERY_THRESHOLD,
    app_state: AppState | None = None,
) -> Verdicts:
    """The checker's verdicts on a (history, broker state, held locks) snapshot and the app's
    state, carrying their explanation lines: for a caller that hands out only the verdicts
    (``chaos_env.verdicts()``, whose ``assert_verdicts`` failure then says why)."""
    history, broker, held = snapshot
    verdicts = check(history, broker, held, redelivery_threshold, app_state)
    verdicts.explanations = explain(verdicts, history, settings)
    return verdicts


# --- pending -------------------------------------------------------------------------------------


def _pending(task: TaskReport, facts: Facts) -> str:
    # Any running attempt, not only the last: the checker calls a task pending while one runs
    # (e.g. attempt 1 still runs on a cut-off worker while attempt 2's process died).
    running = [a for a in task.attempts if a.running]
    if "redelivery_loop" in task.labels and facts.clock.end_reason == h.END_ON_REDELIVERY_LOOP:
        return (
            f"in a redelivery loop when {facts.run_end()}: every delivery died and the broker"
            " put the message back, so it would be delivered again and again (see its"
            " redelivery_loop line for what would change it)"
        )
    if running:
        return _still_running(running[-1], facts)
    where = task.in_broker
    if "unacked" in where and facts.settings.broker == "rabbitmq":
        return (
            "RabbitMQ still had its message unacknowledged on a live connection when "
            + facts.run_end()
            + ": a worker held it (paused, busy past the deadline, or an ETA/countdown not yet"
            " due); it returns to the queue the moment that connection closes; would change it:"
            " a longer timeout, or a task_time_limit that ends a stuck task"
        )
    if "unacked" in where:
        return _unacked(task, facts)
    if where:
        live = facts.clock.live_workers()
        who = "no worker was alive to take it" if not live else "no worker had taken it yet"
        return (
            f"its message waits in {', '.join(where)}: {who} when {facts.run_end()};"
            " would change it: a longer timeout (or a worker consuming that queue)"
        )
    return (
        "it never ran and is not in the broker by itself: it waits for an earlier member of its"
        " workflow, which is pending; it runs once that member completes"
    )


def _still_running(attempt: Attempt, facts: Facts) -> str:
    limit = facts.settings.value("task_time_limit")
    bound = (
        f"{facts.settings.show('task_time_limit')} would end it"
        if limit
        else f"{facts.settings.show('task_time_limit')}: nothing bounds how long it runs"
    )
    return (
        f"attempt {attempt.attempt} on {attempt.worker or '?'} (started at"
        f" {facts.at(attempt.started)}) was still running when {facts.run_end()}; {bound};"
        " would change it: a longer timeout, or a time limit for the task"
    )


def _why_unacked(task: TaskReport, facts: Facts) -> str:
    """How the message came to sit in the unacked set with nobody to ack or reject it."""
    last, settings = last_attempt(task), facts.settings
    if last is None:
        return (
            f"it was prefetched (never started) by a worker that died;"
            f" {settings.show('worker_prefetch_multiplier')} lets each pool process reserve"
            " that many messages, and a dead worker's reserved messages wait like running ones"
        )
    if last.state == "RETRY":
        return _held_retry(task, last, facts)
    fault = facts.clock.faults.get(last.interrupted_by) if last.interrupted_by is not None else None
    # The fault event says whether it took the whole worker (crashes.kills_whole_worker; an oom
    # only if the worker's exit is in the history); without children the process is the worker.
    whole = fault is not None and (
        (kills_whole_worker(fault) and (last.worker or "") in facts.clock.dead)
        or settings.pool in WHOLE_WORKER_POOLS
    )
    died = how_it_died(last, facts) if last.died is not None else "its worker died"
    if whole:
        return (
            f"{died}, taking the whole worker with it: with {settings.show('task_acks_late')}"
            " nobody was left to acknowledge or reject the message"
        )
    return f"{died} and its message was not acknowledged ({settings.show('task_acks_late')})"


def _held_retry(task: TaskReport, last: Attempt, facts: Facts) -> str:
    """A retry's countdown/ETA message, reserved unacknowledged until due: say what the history
    shows (its due time against the run's end, which workers exited and when), no more."""
    clock = facts.clock
    due = clock.due.get(task.task_id)
    head = (
        f"attempt {last.attempt} on {last.worker or '?'} ended in RETRY and its retry (a"
        " countdown/ETA message) was reserved, unacknowledged, by a worker until due"
    )
    if due is None:
        when = "its due time is not in the history"
    elif clock.end is not None and due > clock.end:
        when = f"it was due at {facts.at(due)}, after {facts.run_end()}"
    else:
        when = f"it was due at {facts.at(due)}, before {facts.run_end()}"
    exits = sorted(clock.dead.items(), key=lambda item: item[1])
    if not exits:
        return f"{head}; {when}; no worker exited in the run"
    gone = ", ".join(
        f"{worker} at {facts.at(ts)}" + (" (before it was due)" if due and ts < due else "")
        for worker, ts in exits
    )
    return f"{head}; {when}; workers that exited: {gone}"


def _live_holder(task: TaskReport, facts: Facts) -> str:
    """An unacked message a live worker holds (a countdown/ETA not due at the end, requeued
    after its pool process died and delivered again, or prefetched while no worker died): it
    runs when that worker gets to it, not after the visibility timeout."""
    last, settings, live = last_attempt(task), facts.settings, facts.clock.live_workers()
    head = "its message is unacknowledged in Redis, held by a live worker"
    due, end = facts.clock.due.get(task.task_id), facts.clock.end
    waiting = last is None or last.state == "RETRY"  # its countdown/ETA message never started
    held = live and not facts.clock.dead  # every worker alive: one of them holds it
    if waiting and held and due is not None and end is not None and due > end:
        return (
            f"{head}: its countdown/ETA was due only at {facts.at(due)}, after {facts.run_end()};"
            " a worker keeps such a message reserved, unacknowledged, until it is due (the run"
            " waits for it only up to its timeout); would change it: a timeout past"
            f" {facts.at(due)}"
        )
    if last is None and not facts.clock.dead and live:
        return (
            f"{head}: reserved ({settings.show('worker_prefetch_multiplier')}) and not yet"
            f" started when {facts.run_end()}; would change it: a longer timeout, or"
            " worker_prefetch_multiplier=1 so that a busy worker reserves no more"
        )
    fault = facts.clock.faults.get(last.interrupted_by) if last is not None else None
    whole = fault is not None and kills_whole_worker(fault)
    if last is None or last.died is None or whole or last.worker not in live:
        return ""
    return (
        f"{head}: {how_it_died(last, facts)}, and with {settings.show('task_acks_late')} +"
        f" {settings.show('task_reject_on_worker_lost')} the worker put the message back and"
        f" {last.worker} (alive) took it again, but had not started it when {facts.run_end()};"
        " it would run it (the visibility timeout matters only if that worker dies too);"
        " would change it: a longer timeout"
    )


def _unacked(task: TaskReport, facts: Facts) -> str:
    """Redis: the message comes back after the visibility timeout, at the next restore sweep
    of a live worker; say which of those the run's end came before."""
    sweep, clock = facts.sweep, facts.clock
    last = last_attempt(task)
    held = _live_holder(task, facts)
    if held:
        return held
    delivered = last.started if last is not None else task.dispatched
    why = f"its message sits in Redis's unacked set: {_why_unacked(task, facts)}"
    rule = (
        f"Redis gives it back only once {sweep.visibility_text()} has passed since delivery"
        f" and a live worker runs {sweep.text()}"
    )
    change = (
        "would change it: a shorter visibility_timeout (still above the longest task and"
        " ETA/countdown), unacked_restore_interval/unacked_restore_throttle for a sooner sweep,"
        " or a timeout past the restore; on RabbitMQ it would be requeued at once"
    )
    if delivered is None or clock.end is None:
        return f"{why}; {rule}; {change}"
    restorable = delivered + sweep.visibility
    if clock.end < restorable:
        when = (
            f"{facts.run_end()}, before the visibility timeout had passed (at"
            f" {facts.at(restorable)}), so no sweep could restore it yet"
        )
        return f"{why}; {rule}; {when}; {change}"
    return f"{why}; {rule}; {sweep_timing(restorable, facts)}; {change}"


# --- duplicate_executions, redelivery_loop, stuck_locks ------------------------------------------


def _ran_for(attempt: Attempt, facts: Facts) -> float:
    """How long an attempt ran: to its end, its death, or the run's end."""
    stop = attempt.ended or attempt.died or facts.clock.end or attempt.started
    return stop - attempt.started


def _running_at(attempt: Attempt, moment: float) -> bool:
    """Whether ``attempt`` was still running at ``moment`` (neither ended nor died before)."""
    stop = attempt.ended if attempt.ended is not None else attempt.died
    return stop is None or moment < stop


def _duplicated(task: TaskReport, facts: Facts) -> str:
    done = [a for a in task.attempts if a.state == "SUCCESS"]
    head = f"it completed {len(done)} times ({len(task.attempts)} attempts)"
    overlap = next(
        (
            (a, b)
            for a in task.attempts
            for b in task.attempts
            if b.started > a.started and _running_at(a, b.started)
        ),
        None,
    )
    network = [
        f
        for f in facts.clock.faults.values()
        if f.get("kind") in NETWORK_FAULTS and f.get("status") == INJECTED
    ]
    if overlap is not None and network:
        return (
            f"{head}: {facts.clock.fault_text(network[0].get('fault'))} cut the worker off its"
            f" broker while attempt {overlap[0].attempt} ran; on reconnect Kombu restored the"
            " unacknowledged message and the first run went on; would change it:"
            " worker_cancel_long_running_tasks_on_connection_loss=True, an idempotent task"
        )
    visibility = facts.sweep.visibility
    over = [
        (a, b)
        for a in task.attempts
        for b in task.attempts[a.attempt :]
        if _ran_for(a, facts) > visibility and b.started > a.started
    ]
    if facts.settings.broker == "redis" and over:
        first, again = over[0]
        return (
            f"{head}: attempt {first.attempt} ran {_ran_for(first, facts):.1f}s, longer than"
            f" {facts.sweep.visibility_text()}, so {facts.sweep.text()} gave its"
            " still-unacknowledged message back while it ran, and attempt"
            f" {again.attempt} (started at {facts.at(again.started)}) ran it again;"
            " would change it: a visibility_timeout above the longest task and ETA/countdown,"
            f" and a task_time_limit below it ({facts.settings.show('task_time_limit')})"
        )
    return (
        f"{head}: a later attempt ran a task that had already succeeded: its acknowledgement"
        " never reached the broker (the worker died or lost its connection between the"
        " task's success and the ack), so the message was delivered again; would change it:"
        " an idempotent task (at-least-once delivery re-runs it)"
    )


def _loop(task: TaskReport, facts: Facts) -> str:
    reasons = sorted({a.exit_reason for a in task.attempts if a.exit_reason})
    died = f" ({'; '.join(reasons[:3])})" if reasons else ""
    settings = facts.settings
    return (
        f"delivered {len(task.attempts)} times, more than redelivery_threshold"
        f" {settings.redelivery_threshold}: each attempt died{died} and with"
        f" {settings.show('task_acks_late')} + {settings.show('task_reject_on_worker_lost')}"
        " every death puts the message back: a poison message; would change it: a delivery"
        " limit (RabbitMQ quorum queue x-delivery-limit), a task that does not kill its"
        " process, or task_reject_on_worker_lost=False (the message is then dropped)"
    )


def _stuck_reason(owner: TaskReport | None, facts: Facts) -> str:
    if owner is None:
        return "its owner is no task of this run; nothing of this run will release it"
    last = last_attempt(owner)
    died = how_it_died(last, facts) if last is not None and last.died is not None else None
    head = f"held by {task_name(owner)}, whose " + (died or "last attempt never released it")
    # No pending-owner case: a lock whose owner is pending in the broker is held, not stuck
    # (checker._held_because): its redelivered attempt reclaims it.
    return (
        f"{head}; the task is {owner.outcome}, so nothing will release it; would change it: a"
        " lock with a TTL or one its redelivered attempt reclaims (by task id), with"
        " task_acks_late + task_reject_on_worker_lost so the task comes back"
    )


REASONS: dict[str, Callable[[TaskReport, Facts], str]] = {
    "pending": _pending,
    "lost": lambda task, facts: lost_reason(task, facts),
    "duplicate_executions": _duplicated,
    "redelivery_loop": _loop,
}
assert set(EXPLAINED) == {*REASONS, "stuck_locks"}, "EXPLAINED names what explain() covers"
