"""The repro's plain-language verdict: what happened to the task and the settings behind it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.conclusion import ERROR, FAILED, NOT_RUNNABLE, ScenarioResult
from celery_chaos.core.explain import explain
from celery_chaos.core.explain_facts import RunSettings, sweep_of
from celery_chaos.faults.base import INJECTED
from celery_chaos.faults.registry import FAULTS
from celery_chaos.report.mask import mask_text
from celery_chaos.tools import audit
from celery_chaos.tools.audit.settings import installed_kombu
from celery_chaos.tools.repro.app import AppView
from celery_chaos.tools.repro.spec import (
    EXIT_OK,
    EXIT_UNSAFE,
    EXIT_UNUSABLE,
    ReproSpec,
    parse_trigger,
)

INVARIANT_LINE = "invariant_violations "  # core.explain_app's lines for broken invariants


@dataclass
class Verdict:
    """What the repro says about its one task, in words a user acts on, and the exit code."""

    code: str  # LOST, PENDING, RECOVERED, DUPLICATED, OK, NOT HIT, NOT RUN
    headline: str
    reasons: list[str] = field(default_factory=list)
    exit_code: int = EXIT_OK


def _value(view: AppView, key: str, overrides: dict[str, Any]) -> str:
    value = view.settings[key]
    note = " (--set)" if key in overrides else ""
    if not note and value == audit.CELERY_DEFAULTS.get(key):
        note = " (Celery default)"
    return f"{key}={value!r}{note}"


def _task_value(view: AppView, option: str, overrides: dict[str, Any]) -> str:
    """A task option as the task had it: its own value, else the app setting it inherits."""
    if option in view.policy.own:
        return f"{option}={getattr(view.policy, option)!r} (set on the task)"
    return _value(view, audit.TASK_OPTIONS[option], overrides)


def _visibility(view: AppView, overrides: dict[str, Any] | None = None) -> str:
    """The visibility timeout and, beside it, Kombu's restore sweep cadence as the installed
    Kombu runs it (the core's one wording, as audit and the explanation lines say it)."""
    transport = view.settings.get("broker_transport_options") or {}
    given = " (--set)" if "broker_transport_options" in (overrides or {}) else ""
    return sweep_of(transport, installed_kombu()).visibility_with_sweep(given)


def _visibility_seconds(view: AppView) -> float:
    transport = view.settings.get("broker_transport_options") or {}
    return float(transport.get("visibility_timeout") or audit.REDIS_DEFAULT_VISIBILITY_TIMEOUT)


def _fault_event(result: ScenarioResult) -> dict[str, Any] | None:
    faults = result.verdicts.faults if result.verdicts else []
    return next((f for f in faults if f.get("fault") == 0 and f.get("fired", True)), None)


def _not_hit(result: ScenarioResult, spec: ReproSpec) -> Verdict | None:
    fault = _fault_event(result)
    if fault is None:
        trigger = parse_trigger(spec.at or "")
        hint = (
            f"the task never reached checkpoint {trigger['checkpoint']!r}: does it call"
            f" celery_chaos.checkpoint({trigger['checkpoint']!r})?"
            if "checkpoint" in trigger
            else "the run ended before the fault was due"
        )
        return Verdict("NOT HIT", f"NOT HIT: the fault never fired: {hint}", [], EXIT_UNUSABLE)
    if fault.get("status") != INJECTED:
        detail = f"{fault.get('status')}: {fault.get('detail')}"
        hint = " (was the task still running? try an earlier --at or a checkpoint)"
        return Verdict("NOT HIT", f"NOT HIT: the fault was {detail}{hint}", [], EXIT_UNUSABLE)
    return None


def _why_lost(view: AppView, spec: ReproSpec, task: Any, overrides: dict[str, Any]) -> list[str]:
    policy = view.policy
    rerun_failed = [a for a in task.attempts[1:] if a.state == "FAILURE"]
    if rerun_failed:
        raised = ", ".join(f for f in task.failures if f != "WorkerLostError") or "an error"
        return [
            f"the message was redelivered, but attempt {rerun_failed[-1].attempt} failed"
            f" ({raised}): the task is not safe to run again (a lock it took itself, a"
            " half-written record), so the redelivery could not finish it"
        ]
    if FAULTS[spec.fault].on_broker:
        return [
            "the broker restarted and did not keep the message (Redis without persistence;"
            " RabbitMQ: a transient queue or a transient message)"
        ]
    if not policy.acks_late:
        return [
            f"{_task_value(view, 'acks_late', overrides)}: the message was acknowledged before"
            " the task ran, so the broker forgot it when the process died"
        ]
    if not policy.reject_on_worker_lost:
        return [
            f"{_task_value(view, 'acks_late', overrides)} but"
            f" {_task_value(view, 'reject_on_worker_lost', overrides)}: when the pool process died"
            " the worker acknowledged the message and marked the task failed (WorkerLostError)"
        ]
    return ["the message left the broker without the task completing; see history.jsonl"]


def _why_pending(
    view: AppView, task: Any, overrides: dict[str, Any], rabbitmq: bool = False
) -> list[str]:
    if "unacked" in task.in_broker and rabbitmq:
        return [
            "RabbitMQ still had the message unacknowledged on a live connection at the end: a"
            " worker held it (paused, or busy past the deadline); it returns to the queue the"
            " moment that connection closes"
        ]
    if "unacked" in task.in_broker:
        reasons = [
            f"{_visibility(view, overrides)}: the whole worker died, so nobody rejected the"
            " message; it sits in Redis's unacked set and runs again only after the visibility"
            " timeout"
        ]
        if view.settings["worker_prefetch_multiplier"] > 1:
            reasons.append(
                f"{_value(view, 'worker_prefetch_multiplier', overrides)}: prefetched messages of"
                " a dead worker wait for the visibility timeout too"
            )
        return reasons
    return [f"its message waits in {', '.join(task.in_broker) or 'a running attempt'}"]


def _why_recovered(
    view: AppView, spec: ReproSpec, overrides: dict[str, Any], rabbitmq: bool = False
) -> list[str]:
    if FAULTS[spec.fault].kills_task_process:
        return [
            f"{_task_value(view, 'acks_late', overrides)} +"
            f" {_task_value(view, 'reject_on_worker_lost', overrides)}: the worker requeued the"
            " message when its pool process died, and the task ran again"
        ]
    if rabbitmq:
        return [
            f"{_task_value(view, 'acks_late', overrides)}: RabbitMQ requeued the dead worker's"
            " unacknowledged message the moment its connection closed (no visibility timeout)"
        ]
    return [
        f"{_task_value(view, 'acks_late', overrides)} and {_visibility(view, overrides)}: the"
        " dead worker's unacked message was restored to a live worker"
    ]


def _not_run(result: ScenarioResult) -> Verdict:
    hint = (
        "; with --backend docker the --worker-image must contain your app (see README)"
        if result.backend == "docker" and "ModuleNotFoundError" in result.reason
        else ""
    )
    return Verdict("NOT RUN", f"NOT RUN: {result.reason}{hint}", [], EXIT_UNUSABLE)


def _lost(view: AppView, spec: ReproSpec, task: Any) -> Verdict:
    failed = f" Celery marked it failed ({', '.join(task.failures)})." if task.failures else ""
    headline = "LOST: the task never completed and is not in the broker: nothing will run it again."
    return Verdict("LOST", headline + failed, _why_lost(view, spec, task, spec.celery))


def _pending(view: AppView, spec: ReproSpec, task: Any, rabbitmq: bool = False) -> Verdict:
    headline = "PENDING: the task did not complete; its message is still in the broker"
    if "unacked" in task.in_broker and rabbitmq:
        headline += " (unacknowledged on a live RabbitMQ connection)"
    elif "unacked" in task.in_broker:
        seconds = _visibility_seconds(view)
        headline += f" (unacked) and runs again only after the visibility timeout ({seconds:g}s)"
    return Verdict("PENDING", headline + ".", _why_pending(view, task, spec.celery, rabbitmq))


def _dead_lettered(view: AppView, spec: ReproSpec, task: Any) -> Verdict:
    where = ", ".join(task.in_broker)
    headline = (
        "DEAD-LETTERED: the task never completed; RabbitMQ moved its message to a dead-letter"
        f" queue ({where}): nothing runs it unless someone moves it back."
    )
    return Verdict("DEAD-LETTERED", headline, [])


def _duplicated(view: AppView, spec: ReproSpec, task: Any) -> Verdict:
    successes = sum(1 for a in task.attempts if a.state == "SUCCESS")
    reasons = [
        f"{_visibility(view, spec.celery)} is shorter than the task ran: Redis handed the"
        " still-running message to another worker"
    ]
    if FAULTS[spec.fault].cuts_connection:  # scenario 11a: no timeout involved
        reasons = [
            "the worker lost its broker connection while the task ran: on reconnect kombu"
            " restored its unacknowledged message and the first run went on"
            " (worker_cancel_long_running_tasks_on_connection_loss is off)"
        ]
    return Verdict("DUPLICATED", f"DUPLICATED: the task completed {successes} times.", reasons)


def _recovered(view: AppView, spec: ReproSpec, task: Any, rabbitmq: bool = False) -> Verdict:
    headline = (
        f"RECOVERED: the killed attempt was redelivered and the task completed once"
        f" ({len(task.attempts)} attempts)."
    )
    return Verdict("RECOVERED", headline, _why_recovered(view, spec, spec.celery, rabbitmq))


def _ok(view: AppView, spec: ReproSpec, task: Any) -> Verdict:
    if "retried" in task.labels:
        return Verdict(
            "OK",
            f"OK: the task completed once, in {len(task.attempts)} attempts its own Retry asked"
            " for; the fault did not interrupt it.",
        )
    return Verdict("OK", "OK: the task completed in one attempt; the fault did not interrupt it.")


# The task's outcome (the checker's verdict) -> its plain-language verdict.
BY_OUTCOME: dict[str, Callable[[AppView, ReproSpec, Any], Verdict]] = {
    "lost": _lost,
    "pending": _pending,
    "dead_lettered": _dead_lettered,
    "duplicate_executions": _duplicated,
    "recovered": _recovered,
    "ok": _ok,
}


BY_BROKER: dict[str, Callable[[AppView, ReproSpec, Any, bool], Verdict]] = {
    "pending": _pending,
    "recovered": _recovered,
}


def verdict_of(result: ScenarioResult, spec: ReproSpec, view: AppView) -> Verdict:
    """The plain-language verdict for the one task of a repro, with the settings behind it."""
    if result.status in (NOT_RUNNABLE, ERROR) or result.verdicts is None:
        return _not_run(result)
    missed = _not_hit(result, spec)
    if missed is not None:
        return missed
    task = result.verdicts.tasks[spec.member if spec.workflow is not None else 0]
    rabbitmq = result.scenario.broker.kind == "rabbitmq"
    if task.outcome in ("pending", "recovered"):  # how a message waits/returns: broker-specific
        verdict = BY_BROKER[task.outcome](view, spec, task, rabbitmq)
    else:
        verdict = BY_OUTCOME.get(task.outcome, _ok)(view, spec, task)
    verdict.reasons += _explained(result, task.task_id)
    # the repro file's broken invariants (the run read them, the checker judged them): a task
    # that came through can still leave the app's state wrong
    verdict.reasons += [
        "invariant " + line.removeprefix(INVARIANT_LINE)
        for line in result.explanations
        if line.startswith(INVARIANT_LINE)
    ]
    for workflow in result.verdicts.workflows:  # the workflow's fate beside its member's
        verdict.reasons.append(f"workflow ({workflow.kind}): {workflow.verdict}: {workflow.reason}")
    verdict.exit_code = EXIT_UNSAFE if result.status == FAILED else EXIT_OK
    return verdict


def _explained(result: ScenarioResult, task_id: str) -> list[str]:
    """The task's explanation lines (core.explain): the timings behind its verdict."""
    marker = f"[{task_id}]: "
    return [line.split(marker, 1)[1] for line in result.explanations if marker in line]


def explain_with_app_settings(result: ScenarioResult, view: AppView) -> None:
    """Explain the repro's findings with the app's own settings (the scenario only holds the
    ``--set`` overrides; the harness read the rest from the imported app), the task's own
    options winning as Celery resolves them."""
    path = result.report_dir / "history.jsonl"
    if result.verdicts is None or not path.exists():
        return
    policy = view.policy
    known = dict(view.settings) | {
        "task_acks_late": policy.acks_late,
        "task_reject_on_worker_lost": policy.reject_on_worker_lost,
        "task_time_limit": policy.time_limit,
        "task_soft_time_limit": policy.soft_time_limit,
    }
    celery = {k: v for k, v in known.items() if v != audit.CELERY_DEFAULTS.get(k, object())}
    scenario = result.scenario
    settings = RunSettings(
        celery=celery,
        broker=scenario.broker.kind,
        persistence=scenario.broker.persistence,
        pool=scenario.workers.pool,
        timeout=scenario.timeout,
        kombu=result.versions.get("kombu"),
        redelivery_threshold=scenario.redelivery_threshold,
    )
    lines = explain(result.verdicts, h.read_jsonl(str(path)), settings)
    result.explanations = [mask_text(line) for line in lines]  # as report.explained.fill does


def settings_lines(view: AppView, overrides: dict[str, Any]) -> list[str]:
    """The settings that decide a task's fate when its worker dies, as the workers had them."""
    policy = view.policy
    own = f" (task {policy.name} sets {', '.join(sorted(policy.own))})" if policy.own else ""
    given = [f"--set {key}={json.dumps(value)}" for key, value in overrides.items()]
    return given + [
        f"acks_late={policy.acks_late}, reject_on_worker_lost={policy.reject_on_worker_lost},"
        f" retry_on_worker_lost={policy.retry_on_worker_lost}{own}",
        _visibility(view),
        _value(view, "worker_prefetch_multiplier", overrides),
        f"time_limit={policy.time_limit}, soft_time_limit={policy.soft_time_limit}",
    ]
