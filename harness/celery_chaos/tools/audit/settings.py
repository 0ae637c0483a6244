"""The settings the audit rules read, resolved per task: the app's value, else Celery's default.

A task's own option (``acks_late=True`` on the decorator) wins over the app setting it would
otherwise inherit, exactly as Celery resolves it when a worker runs the task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from celery_chaos.core.explain_facts import (
    CELERY_DEFAULTS,
    KOMBU_VISIBILITY_TIMEOUT,
    Sweep,
    sweep_of,
)

SETTINGS = tuple(CELERY_DEFAULTS)
REDIS_DEFAULT_VISIBILITY_TIMEOUT = KOMBU_VISIBILITY_TIMEOUT
REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "sentinel", "valkey", "valkeys")
# Task attribute -> the app setting it falls back to when the task leaves it as None.
TASK_OPTIONS = {
    "acks_late": "task_acks_late",
    "reject_on_worker_lost": "task_reject_on_worker_lost",
    "retry_on_worker_lost": "task_retry_on_worker_lost",
    "acks_on_failure_or_timeout": "task_acks_on_failure_or_timeout",
    "acks_on_failure": "task_acks_on_failure",
    "acks_on_timeout": "task_acks_on_timeout",
    "time_limit": "task_time_limit",
    "soft_time_limit": "task_soft_time_limit",
}
# Options a task sets on purpose (Celery itself derives acks_on_failure/acks_on_timeout).
OWN_OPTIONS = (
    "acks_late",
    "reject_on_worker_lost",
    "retry_on_worker_lost",
    "acks_on_failure_or_timeout",
    "time_limit",
    "soft_time_limit",
)
SOFT_SHUTDOWN_SINCE = (5, 5)
DEFAULT_TASK = "(app default)"


@dataclass(frozen=True)
class TaskPolicy:
    """A task's effective delivery settings (its own option, else the app setting)."""

    name: str
    acks_late: bool
    reject_on_worker_lost: bool
    retry_on_worker_lost: bool
    ack_on_failure: bool
    ack_on_timeout: bool
    time_limit: float | None
    soft_time_limit: float | None
    own: frozenset[str] = field(default_factory=frozenset)  # options the task sets itself


def effective_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the rules read: the app's value, else Celery's default."""
    return {key: config.get(key, default) for key, default in CELERY_DEFAULTS.items()}


RABBITMQ_SCHEMES = ("amqp", "amqps", "pyamqp", "librabbitmq")


def broker_kind(url: Any) -> str | None:
    """The harness broker kind that matches an app's ``broker_url``: ``rabbitmq`` for
    ``amqp://``/``pyamqp://`` (Celery's default when unset), ``redis`` for ``redis://`` and
    friends, None for a transport the harness cannot start (SQS, ...)."""
    scheme = broker_scheme(url)
    if scheme in RABBITMQ_SCHEMES:
        return "rabbitmq"
    return "redis" if scheme in REDIS_SCHEMES else None


def broker_scheme(url: Any) -> str:
    """The broker transport from ``broker_url`` (Celery's default is RabbitMQ: ``amqp``)."""
    if isinstance(url, (list, tuple)):
        url = url[0] if url else None
    if not url:
        return "amqp"
    first = str(url).split(";")[0].strip()
    return first.split("://", 1)[0].lower() if "://" in first else first.lower()


def _option(options: Mapping[str, Any], name: str, config: Mapping[str, Any]) -> Any:
    value = options.get(name)
    return config[TASK_OPTIONS[name]] if value is None else value


def _ack_flag(options: Mapping[str, Any], name: str, config: Mapping[str, Any]) -> bool:
    """acks_on_failure / acks_on_timeout fall back to acks_on_failure_or_timeout (Celery 5.7)."""
    value = _option(options, name, config)
    if value is None:
        value = _option(options, "acks_on_failure_or_timeout", config)
    return bool(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def resolve_task(name: str, options: Mapping[str, Any], config: Mapping[str, Any]) -> TaskPolicy:
    return TaskPolicy(
        name=name,
        acks_late=bool(_option(options, "acks_late", config)),
        reject_on_worker_lost=bool(_option(options, "reject_on_worker_lost", config)),
        retry_on_worker_lost=bool(_option(options, "retry_on_worker_lost", config)),
        ack_on_failure=_ack_flag(options, "acks_on_failure", config),
        ack_on_timeout=_ack_flag(options, "acks_on_timeout", config),
        time_limit=_number(_option(options, "time_limit", config)),
        soft_time_limit=_number(_option(options, "soft_time_limit", config)),
        own=frozenset(key for key in OWN_OPTIONS if _sets_itself(options, key, config)),
    )


def _sets_itself(options: Mapping[str, Any], key: str, config: Mapping[str, Any]) -> bool:
    """Whether a task's option differs from the app setting it would otherwise inherit."""
    value, inherited = options.get(key), config[TASK_OPTIONS[key]]
    if value is None:
        return False
    if isinstance(value, bool) or inherited is None:
        return bool(value) != bool(inherited)
    return value != inherited


@dataclass(frozen=True)
class Context:
    """Everything the rules look at, resolved once."""

    config: Mapping[str, Any]
    policies: tuple[TaskPolicy, ...]
    redis: bool
    visibility_timeout: float
    visibility_explicit: bool
    celery_version: tuple[int, int]
    max_eta: float | None
    sweep: Sweep = field(default_factory=Sweep)  # Kombu's restore sweep, as the app has it
    grace: float | None = None  # the platform's SIGTERM-to-SIGKILL grace period (--grace)
    pool: str = "prefork"  # the app's worker_pool (a -P on the command line is not visible)
    strays: tuple[Any, ...] = ()  # settings written where the app may never read them

    def where(self, predicate: Callable[[TaskPolicy], bool]) -> list[TaskPolicy]:
        return [p for p in self.policies if predicate(p)]


def context(
    config: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    celery_version: tuple[int, int],
    max_eta: float | None,
    **deploy: Any,
) -> Context:
    """The rules' view of an app; ``deploy``: Context's ``grace``, ``pool`` and ``strays``."""
    settings = effective_config(config)
    transport = settings["broker_transport_options"] or {}
    visibility = transport.get("visibility_timeout")
    policies = [resolve_task(name, options, settings) for name, options in sorted(tasks.items())]
    return Context(
        config=settings,
        policies=tuple(policies or [resolve_task(DEFAULT_TASK, {}, settings)]),
        redis=broker_scheme(settings["broker_url"]) in REDIS_SCHEMES,
        visibility_timeout=float(visibility or REDIS_DEFAULT_VISIBILITY_TIMEOUT),
        visibility_explicit=visibility is not None,
        celery_version=celery_version,
        max_eta=max_eta,
        sweep=sweep_of(transport, installed_kombu()),
        **deploy,
    )


def installed_kombu() -> str | None:
    """The Kombu the app runs with here (before 5.7 it ignores the sweep options)."""
    try:
        return metadata.version("kombu")
    except metadata.PackageNotFoundError:
        return None
