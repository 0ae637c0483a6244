"""Why a task is ``lost`` (see :mod:`celery_chaos.core.explain`): the first of these that the
history shows, each with the setting behind it and what would change it."""

from __future__ import annotations

from celery_chaos.core.explain_facts import Facts, RunSettings, how_it_died, last_attempt
from celery_chaos.core.verdicts import TaskReport
from celery_chaos.faults.base import INJECTED
from celery_chaos.faults.registry import FAULTS

BROKER_FAULTS = tuple(name for name, kind in FAULTS.items() if kind.on_broker)


def lost_reason(task: TaskReport, facts: Facts) -> str:
    for reason in (_revoked, _dropped, _rerun_failed, _timed_out, _broker_restart, _killed):
        found = reason(task, facts)
        if found:
            return found
    last = last_attempt(task)
    ended = f"its last attempt ended {last.state or 'without a result'}" if last else "it never ran"
    return (
        f"{ended} and its message was gone from the broker when {facts.run_end()}; nothing will"
        " run it again"
    )


def _revoked(task: TaskReport, facts: Facts) -> str:
    if "revoked" not in task.labels:
        return ""
    return "the workload revoked it, so no worker was meant to run it (a lost task by design)"


def _dropped(task: TaskReport, facts: Facts) -> str:
    if "dropped_at_delivery_limit" not in task.labels:
        return ""
    queue = task.attempts[-1].queue if task.attempts else "?"
    return (
        f"RabbitMQ dropped its message at queue {queue}'s delivery limit after"
        f" {len(task.attempts)} deliveries; would change it: a higher x-delivery-limit, or a"
        " dead-letter exchange that keeps the message"
    )


def _rerun_failed(task: TaskReport, facts: Facts) -> str:
    rerun = [a for a in task.attempts[1:] if a.state == "FAILURE"]
    if not rerun:
        return ""
    raised = ", ".join(f for f in task.failures if f != "WorkerLostError") or "an error"
    return (
        f"its message was redelivered, but attempt {rerun[-1].attempt} failed ({raised}):"
        " the task is not safe to run again (a lock it took itself, a half-written record);"
        " would change it: a task that reclaims its own lock and resumes idempotently"
    )


def _timed_out(task: TaskReport, facts: Facts) -> str:
    if "TimeLimitExceeded" not in task.failures:
        return ""
    settings = facts.settings
    return (
        f"it exceeded its hard time limit ({settings.show('task_time_limit')}, or the task's"
        f" own); with {settings.show('task_acks_on_failure_or_timeout')} the timed-out message"
        " is acknowledged and not run again; would change it: a longer time limit, or"
        " task_acks_on_failure_or_timeout=False (requeued on Celery 5.7+)"
    )


def _broker_restart(task: TaskReport, facts: Facts) -> str:
    # A restart before the task was sent cannot have forgotten its message.
    sent = task.dispatched
    restarts = [
        f
        for f in facts.clock.faults.values()
        if f.get("kind") in BROKER_FAULTS
        and f.get("status") == INJECTED
        and (sent is None or f["ts"] >= sent)
    ]
    if not restarts:
        return ""
    settings, restart = facts.settings, restarts[0]
    head = f"{facts.clock.fault_text(restart.get('fault'))} restarted the {settings.broker} broker"
    if settings.broker == "redis":
        return (
            f"{head} (persistence: {settings.persistence}), which forgot the message the task was"
            " in; would change it: broker persistence: aof"
        )
    if settings.value("task_default_delivery_mode") in (1, "transient"):
        return (
            f"{head}, which forgot the message the task was in: with"
            f" {settings.show('task_default_delivery_mode')} RabbitMQ keeps no message across a"
            " restart; would change it: task_default_delivery_mode='persistent'"
        )
    queues = settings.value("task_queues")
    if isinstance(queues, dict) and any(
        isinstance(q, dict) and q.get("durable") is False for q in queues.values()
    ):
        return (
            f"{head}, which forgot the message the task was in: {settings.show('task_queues')}"
            " declares a queue transient (durable: false), and RabbitMQ drops such a queue with"
            " its messages when it restarts; would change it: durable queues"
        )
    return f"{head}, {_persistent_gone(settings)}"


def _persistent_gone(settings: RunSettings) -> str:
    """A persistent message gone after a crash: RabbitMQ writes persistent messages to disk in
    the background and tells a publisher nothing unless it asks for confirms, so one published
    moments before a crash may never have reached the disk (seen once in CI on docker: three
    messages of a durable queue gone after a SIGKILL about a second after they were sent)."""
    return (
        "and the message the task was in was gone although"
        f" {settings.show('task_default_delivery_mode')} makes it persistent: RabbitMQ writes"
        " persistent messages to disk in the background and confirms nothing to a publisher"
        f" that does not ask ({settings.show('broker_transport_options')}), so one published"
        " moments before a crash can be lost; would change it: broker_transport_options"
        " confirm_publish=True (a publish returns once RabbitMQ has the message safe)"
    )


def _killed(task: TaskReport, facts: Facts) -> str:
    """The attempt died and the acks mode decided the message's fate."""
    last, settings = last_attempt(task), facts.settings
    if last is None or last.died is None:
        return ""
    died = how_it_died(last, facts)
    late = settings.value("task_acks_late")
    if "WorkerLostError" in task.failures and late:
        return (
            f"{died}; with {settings.show('task_acks_late')} but"
            f" {settings.show('task_reject_on_worker_lost')} the worker acknowledged the message"
            " and marked the task failed (WorkerLostError) instead of requeueing it; would"
            " change it: task_reject_on_worker_lost=True"
        )
    if settings.known("task_acks_late") and not late:
        return (
            f"{died}; with {settings.show('task_acks_late')} the message was acknowledged before"
            " the task ran, so the broker had already forgotten it; would change it:"
            " task_acks_late=True with task_reject_on_worker_lost=True"
        )
    return (
        f"{died} and its message left the broker ({settings.show('task_acks_late')},"
        f" {settings.show('task_reject_on_worker_lost')}); nothing will"
        " run it again"
    )
