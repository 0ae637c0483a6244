"""The audit rules: each turns the resolved settings into findings about worker death.

:func:`audit` is a pure function over a flat settings mapping (``app.conf`` keys) and per-task
options, so every rule is unit-testable. Each finding names the setting, what it causes when a
worker dies, and the built-in scenario that demonstrates it on real workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from celery_chaos.tools.audit.deploy_rules import DEPLOY_RULES
from celery_chaos.tools.audit.findings import (
    ERROR,
    INFO,
    LEVELS,
    WARNING,
    Finding,
    setting_text,
    shown_by,
    task_names,
    visibility_text,
)
from celery_chaos.tools.audit.rabbitmq_rules import rabbitmq_findings
from celery_chaos.tools.audit.settings import (
    SOFT_SHUTDOWN_SINCE,
    Context,
    TaskPolicy,
    broker_scheme,
    context,
)

__all__ = ["ERROR", "INFO", "LEVELS", "RULES", "WARNING", "Finding", "audit", "shown_by"]

# --- the rules ---------------------------------------------------------------------------------


def _acks_early(ctx: Context) -> list[Finding]:
    early = ctx.where(lambda p: not p.acks_late)
    if not early:
        return []
    retried = all(p.retry_on_worker_lost for p in early)
    causes = (
        "the message is acknowledged before the task runs: when the process running it dies"
        " (OOM kill, segfault, SIGKILL, a deploy, host loss) the broker has already forgotten it"
        " and nothing ever runs it again; a lock it held stays held"
    )
    if retried:
        causes += (
            " (task_retry_on_worker_lost re-sends it when only the pool process dies, but not"
            " when the whole worker dies)"
        )
    return [
        Finding(
            ERROR,
            "defaults-child-kill",
            setting_text(ctx, "task_acks_late", early, "acks_late"),
            causes,
            "defaults-child-kill",
            task_names(early),
        )
    ]


def _late_without_reject(ctx: Context) -> list[Finding]:
    affected = ctx.where(
        lambda p: p.acks_late and not p.reject_on_worker_lost and not p.retry_on_worker_lost
    )
    if not affected:
        return []
    return [
        Finding(
            ERROR,
            "ack-late-no-reject-child-kill",
            setting_text(ctx, "task_reject_on_worker_lost", affected, "reject_on_worker_lost"),
            "acks_late alone is not enough: when the pool process dies the worker acknowledges"
            " the message and marks the task failed (WorkerLostError) instead of redelivering it:"
            " the task is lost",
            "ack-late-no-reject-child-kill",
            task_names(affected),
        )
    ]


def _longest(policy: TaskPolicy) -> float | None:
    return policy.time_limit or policy.soft_time_limit


def _visibility_shorter(ctx: Context) -> list[Finding]:
    if not ctx.redis:
        return []
    findings = []
    limit = ctx.visibility_timeout
    too_long = ctx.where(lambda p: p.acks_late and (_longest(p) or 0) > limit)
    if too_long:
        longest = max(_longest(p) or 0 for p in too_long)
        findings.append(
            Finding(
                ERROR,
                "visibility-shorter-than-task",
                f"{visibility_text(ctx)} < time_limit {longest:g}s",
                "a late-acked message still unacknowledged after visibility_timeout is handed to"
                " another worker while the first one still runs it: the task runs twice and"
                " non-idempotent side effects happen twice",
                "visibility-shorter-than-task",
                task_names(too_long),
            )
        )
    if ctx.max_eta is not None and ctx.max_eta > limit:
        findings.append(
            Finding(
                ERROR,
                "visibility-shorter-than-eta",
                f"{visibility_text(ctx)} < ETA/countdown {ctx.max_eta:g}s",
                "a worker holds an ETA/countdown message unacknowledged until it is due; past"
                " visibility_timeout Redis hands it to another worker too: it runs twice"
                " (whatever task_acks_late says)",
                "visibility-shorter-than-task",
            )
        )
    unbounded = ctx.where(lambda p: p.acks_late and _longest(p) is None)
    if unbounded:
        findings.append(
            Finding(
                WARNING,
                "no-time-limit",
                f"task_time_limit=None with {visibility_text(ctx)}",
                "nothing bounds how long a late-acked task runs: one that ever runs longer than"
                " visibility_timeout is delivered again and runs twice; set task_time_limit"
                " below visibility_timeout",
                "visibility-shorter-than-task",
                task_names(unbounded),
            )
        )
    return findings


def _killed_worker_wait(ctx: Context) -> list[Finding]:
    late = ctx.where(lambda p: p.acks_late)
    if not (ctx.redis and late):
        return []
    if ctx.visibility_explicit:
        level, when = INFO, f"after {ctx.visibility_timeout:g}s"
    else:
        level, when = WARNING, "only after an hour (the default visibility_timeout, 3600s)"
    return [
        Finding(
            level,
            "ack-late-kill-worker-default-visibility",
            visibility_text(ctx),
            "when a whole worker dies (SIGKILL, host loss, eviction) nobody rejects its messages:"
            f" they stay in Redis's unacked set and come back {when}, at the next restore sweep"
            f" (up to {ctx.sweep.period:g}s later): a run or an outage shorter than that sees"
            " them pending",
            "ack-late-kill-worker-default-visibility",
            task_names(late),
        )
    ]


KOMBU_MUTEX_EXPIRE = 300.0  # Kombu's unacked_mutex_expire
MUTEX_EXPIRE_NOTICE = 60.0  # longer than this and a stuck restore mutex is worth a note


def _restore_mutex(ctx: Context) -> list[Finding]:
    """README "A kill inside the restore sweep": measured, not demonstrated by a scenario (a
    kill lands inside the millisecond sweep only now and then)."""
    late = ctx.where(lambda p: p.acks_late)
    transport = ctx.config["broker_transport_options"] or {}
    expire = float(transport.get("unacked_mutex_expire", KOMBU_MUTEX_EXPIRE))
    if not (ctx.redis and late) or expire <= MUTEX_EXPIRE_NOTICE:
        return []
    return [
        Finding(
            INFO,
            "restore-mutex-held-by-killed-worker",
            f"broker_transport_options.unacked_mutex_expire={expire:g}s",
            "a worker killed inside Kombu's restore sweep leaves the sweep's lock held: no worker"
            f" restores an unacknowledged message for up to {expire:g}s; a sweep takes"
            " milliseconds, so a lower value (e.g. 10) bounds the stall",
            None,
            task_names(late),
        )
    ]


def _prefetch(ctx: Context) -> list[Finding]:
    multiplier = ctx.config["worker_prefetch_multiplier"]
    late = ctx.where(lambda p: p.acks_late)
    if not (ctx.redis and late and isinstance(multiplier, int) and multiplier > 1):
        return []
    return [
        Finding(
            WARNING,
            "prefetch-with-acks-late",
            setting_text(ctx, "worker_prefetch_multiplier", late, "prefetch"),
            f"each pool process reserves up to {multiplier} messages; when the worker dies the"
            " prefetched ones (never started) wait in the unacked set for visibility_timeout"
            " too; use worker_prefetch_multiplier=1 for long tasks",
            "ack-late-kill-worker-default-visibility",
            task_names(late),
        )
    ]


def _soft_shutdown(ctx: Context) -> list[Finding]:
    if ctx.celery_version < SOFT_SHUTDOWN_SINCE:
        version = ".".join(map(str, ctx.celery_version))
        return [
            Finding(
                INFO,
                "no-soft-shutdown",
                f"Celery {version}",
                "Celery 5.5+ can give running tasks worker_soft_shutdown_timeout seconds on a"
                " cold shutdown and requeue them; this version cuts them off at once",
            )
        ]
    timeout = ctx.config["worker_soft_shutdown_timeout"]
    late = bool(ctx.where(lambda p: p.acks_late))
    if not timeout:
        return [
            Finding(
                WARNING if ctx.redis and late else INFO,
                "no-soft-shutdown",
                f"worker_soft_shutdown_timeout={timeout!r}",
                "a cold shutdown (a second SIGTERM, SIGQUIT, the platform's kill after its grace"
                " period) cuts running tasks off at once"
                + (
                    "; on Redis their late-acked messages then wait for visibility_timeout"
                    if ctx.redis and late
                    else ""
                ),
            )
        ]
    if ctx.redis and not ctx.config["worker_enable_soft_shutdown_on_idle"]:
        return [
            Finding(
                INFO,
                "no-soft-shutdown-on-idle",
                "worker_enable_soft_shutdown_on_idle=False",
                "a worker with no task running skips the soft shutdown, so ETA/countdown"
                " messages it holds are not requeued and wait for visibility_timeout",
            )
        ]
    return []


def _poison(ctx: Context) -> list[Finding]:
    rejecting = ctx.where(lambda p: p.acks_late and p.reject_on_worker_lost)
    if not rejecting:
        return []
    return [
        Finding(
            WARNING,
            "poison-reject",
            setting_text(ctx, "task_reject_on_worker_lost", rejecting, "reject_on_worker_lost"),
            "a message whose task kills its own process every time (segfault, OOM on every run)"
            " is requeued forever: a redelivery loop that burns a worker; and every redelivered"
            " task runs again from the start, so it must be idempotent (reclaim its own lock,"
            " guard side effects with an idempotency key, count attempts by task id)",
            "poison-reject",
            task_names(rejecting),
        )
    ]


def _failure_or_timeout(ctx: Context) -> list[Finding]:
    late = ctx.where(lambda p: p.acks_late)
    if not late:
        return []
    not_acked = [p for p in late if not (p.ack_on_failure and p.ack_on_timeout)]
    setting = setting_text(
        ctx, "task_acks_on_failure_or_timeout", late, "acks_on_failure_or_timeout"
    )
    if not not_acked:
        return [
            Finding(
                INFO,
                "acks-on-failure-or-timeout",
                setting,
                "a late-acked task that raises or exceeds its hard time_limit is acknowledged:"
                " it is not run again unless it retries itself (autoretry_for, self.retry)",
            )
        ]
    return [
        Finding(
            WARNING,
            "acks-on-failure-or-timeout",
            setting,
            "failed or timed-out messages are not acknowledged: a failed one is rejected without"
            " requeue (dropped on Redis, dead-lettered on RabbitMQ if configured); on Celery 5.7+"
            " a timed-out one is requeued, so a task that always times out loops",
            "poison-reject",
            task_names(not_acked),
        )
    ]


def _broker_persistence(ctx: Context) -> list[Finding]:
    where = (
        "the Redis server's persistence (appendonly yes)"
        if ctx.redis
        else "durable queues and persistent messages on the broker"
    )
    return [
        Finding(
            INFO,
            "broker-restart-no-persistence",
            f"broker {broker_scheme(ctx.config['broker_url'])}",
            f"whether queued messages survive a broker restart depends on {where}, which the"
            " app's configuration cannot show; without it every queued task is lost",
            "broker-restart-no-persistence",
        )
    ]


RULES: tuple[Callable[[Context], list[Finding]], ...] = (
    _acks_early,
    _late_without_reject,
    _visibility_shorter,
    _killed_worker_wait,
    _restore_mutex,
    _prefetch,
    _soft_shutdown,
    _poison,
    _failure_or_timeout,
    _broker_persistence,
    rabbitmq_findings,
    *DEPLOY_RULES,
)


def audit(
    config: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    celery_version: tuple[int, int] = (5, 5),
    max_eta: float | None = None,
    **deploy: Any,
) -> list[Finding]:
    """The findings for an app's settings and its tasks' own options, most severe first.

    ``config``: ``app.conf`` keys (missing ones take Celery's defaults). ``tasks``: task name ->
    options (``acks_late``, ``reject_on_worker_lost``, ``time_limit``... ; None inherits the app
    setting). ``max_eta``: the longest ETA/countdown the code uses (config cannot show it).
    ``deploy``: ``grace`` (the platform's grace period, s), ``pool`` (the app's worker_pool),
    ``strays`` (settings written where the app may never read them: ``strays.strays``).
    """
    ctx = context(config, tasks or {}, celery_version, max_eta, **deploy)
    findings = [finding for rule in RULES for finding in rule(ctx)]
    return sorted(findings, key=lambda f: LEVELS.index(f.level))


def exit_code(findings: list[Finding]) -> int:
    """1 when any finding is an error (the config loses or duplicates work), else 0."""
    return 1 if any(f.level == ERROR for f in findings) else 0
