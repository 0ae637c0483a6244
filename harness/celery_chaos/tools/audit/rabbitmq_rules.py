"""The audit rules that apply only when the app's broker is RabbitMQ (``amqp://``, the default).

RabbitMQ returns an unacknowledged message the moment its channel closes (no visibility timeout),
but it has risks of its own: a ``consumer_timeout`` that closes the channel of a task holding its
message too long, quorum queues' delivery limit, heartbeats, transient queues and messages, and
prefetch with global QoS. Each rule reads the resolved settings only (pure, unit-testable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery_chaos.tools.audit.findings import (
    ERROR,
    INFO,
    WARNING,
    Finding,
    setting_text,
    task_names,
)
from celery_chaos.tools.audit.settings import Context, TaskPolicy, broker_kind

# RabbitMQ's default consumer_timeout (3.8.17+): 30 minutes, set in rabbitmq.conf, not in the app.
RABBITMQ_DEFAULT_CONSUMER_TIMEOUT = 1800.0


def _queue_arguments(ctx: Context) -> list[tuple[str, dict[str, Any], bool]]:
    """``(name, arguments, durable)`` of every queue the app declares in ``task_queues``: kombu
    ``Queue`` objects, or the mapping of name -> options Celery also accepts."""
    queues = ctx.config.get("task_queues") or ()
    if isinstance(queues, dict):
        return [
            (str(name), dict(options.get("queue_arguments") or {}), options.get("durable", True))
            for name, options in queues.items()
            if isinstance(options, dict)
        ]
    found = []
    for queue in queues:
        name = getattr(queue, "name", None) or str(queue)
        arguments = dict(getattr(queue, "queue_arguments", None) or {})
        found.append((name, arguments, bool(getattr(queue, "durable", True))))
    return found


def _longest(policy: TaskPolicy) -> float:
    return policy.time_limit or policy.soft_time_limit or 0.0


def _consumer_timeout(ctx: Context) -> list[Finding]:
    limit = RABBITMQ_DEFAULT_CONSUMER_TIMEOUT
    setting = f"consumer_timeout={limit:g}s (RabbitMQ default unless rabbitmq.conf sets it)"
    findings = []
    slow = ctx.where(lambda p: p.acks_late and _longest(p) > limit)
    if slow:
        longest = max(_longest(p) for p in slow)
        findings.append(
            Finding(
                ERROR,
                "rabbitmq-consumer-timeout",
                f"{setting} < time_limit {longest:g}s",
                "a late-acked task still running after consumer_timeout makes RabbitMQ close the"
                " worker's channel (PRECONDITION_FAILED): the message is requeued and runs again"
                " while the first run goes on, and the worker reconnects",
                "rabbitmq-consumer-timeout",
                task_names(slow),
            )
        )
    if ctx.max_eta is not None and ctx.max_eta > limit:
        findings.append(
            Finding(
                ERROR,
                "rabbitmq-consumer-timeout-eta",
                f"{setting} < ETA/countdown {ctx.max_eta:g}s",
                "a worker holds an ETA/countdown message unacknowledged until it is due; past"
                " consumer_timeout RabbitMQ closes the channel and redelivers every message on it",
                "rabbitmq-consumer-timeout",
            )
        )
    return findings


def _quorum_delivery_limit(ctx: Context) -> list[Finding]:
    quorum = [
        (name, arguments)
        for name, arguments, _ in _queue_arguments(ctx)
        if arguments.get("x-queue-type") == "quorum"
    ]
    rejecting = ctx.where(lambda p: p.acks_late and p.reject_on_worker_lost)
    if not (quorum and rejecting):
        return []
    limits = ", ".join(f"{q}: x-delivery-limit={a.get('x-delivery-limit')}" for q, a in quorum)
    dead_letter = any(a.get("x-dead-letter-exchange") is not None for _, a in quorum)
    return [
        Finding(
            WARNING,
            "rabbitmq-quorum-delivery-limit",
            limits,
            "reject_on_worker_lost requeues the message each time its process dies; a quorum"
            " queue counts those deliveries, allows x-delivery-limit + 1 of them (measured on"
            " RabbitMQ 3.10), then drops the message (verdict: lost, dropped_at_delivery_limit)"
            " or, with x-dead-letter-exchange set, parks it in the dead-letter queue (verdict:"
            " dead_lettered: nothing runs it unless someone moves it back): a poison or OOM loop"
            " ends without the task, not retried (without a limit, RabbitMQ 3.x loops forever)",
            "rabbitmq-quorum-dead-letter" if dead_letter else "rabbitmq-quorum-delivery-limit",
            task_names(rejecting),
        )
    ]


def _heartbeat(ctx: Context) -> list[Finding]:
    heartbeat = ctx.config.get("broker_heartbeat")
    if heartbeat is None or heartbeat > 0:
        return []
    return [
        Finding(
            WARNING,
            "rabbitmq-heartbeat-disabled",
            f"broker_heartbeat={heartbeat!r}",
            "without heartbeats a worker whose host froze or whose network died silently keeps"
            " its messages unacknowledged until the TCP connection times out (minutes to hours):"
            " the broker cannot tell a dead worker from a slow one",
            "rabbitmq-heartbeat-pause",
        )
    ]


def _transient(ctx: Context) -> list[Finding]:
    transient = [name for name, _, durable in _queue_arguments(ctx) if not durable]
    mode = ctx.config.get("task_default_delivery_mode")
    parts = []
    if transient:
        parts.append(f"non-durable queue(s) {', '.join(transient)}")
    if mode in (1, "transient"):
        parts.append(f"task_default_delivery_mode={mode!r}")
    if not parts:
        return []
    return [
        Finding(
            ERROR,
            "rabbitmq-transient",
            "; ".join(parts),
            "a RabbitMQ restart (crash, upgrade, node replacement) drops a non-durable queue with"
            " every message in it, and a transient message even from a durable queue: every"
            " queued task is lost",
            "rabbitmq-restart-transient",
        )
    ]


def _prefetch_global_qos(ctx: Context) -> list[Finding]:
    multiplier = ctx.config.get("worker_prefetch_multiplier")
    late = ctx.where(lambda p: p.acks_late)
    if not (late and isinstance(multiplier, int) and multiplier > 1):
        return []
    return [
        Finding(
            INFO,
            "rabbitmq-prefetch-global-qos",
            setting_text(ctx, "worker_prefetch_multiplier", late, "prefetch"),
            f"each pool process reserves up to {multiplier} messages, held unacknowledged behind"
            " a long task (they return at once if the worker dies, but wait as long as it runs,"
            " and count towards consumer_timeout); Celery's prefetch limit is a global QoS, which"
            " quorum queues do not support (Celery 5.5+ detects them and falls back to per-"
            "consumer QoS): use worker_prefetch_multiplier=1 for long late-acked tasks",
            None,
            task_names(late),
        )
    ]


RABBITMQ_RULES: tuple[Callable[[Context], list[Finding]], ...] = (
    _consumer_timeout,
    _quorum_delivery_limit,
    _heartbeat,
    _transient,
    _prefetch_global_qos,
)


def rabbitmq_findings(ctx: Context) -> list[Finding]:
    """Every RabbitMQ rule's findings; none when the broker is Redis."""
    if broker_kind(ctx.config["broker_url"]) != "rabbitmq":
        return []
    return [finding for rule in RABBITMQ_RULES for finding in rule(ctx)]
