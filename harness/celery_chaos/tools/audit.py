"""``celery-chaos audit``: the worker-death risks an app's configuration carries, found statically.

:func:`audit` is a pure function over a flat settings mapping (``app.conf`` keys) and per-task
options, so every rule is unit-testable; :func:`collect` reads those from a real, imported app.
Each finding names the setting, what it causes when a worker dies, and the built-in scenario in
``scenarios/`` that demonstrates it on real workers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ERROR, WARNING, INFO = "error", "warning", "info"
LEVELS = (ERROR, WARNING, INFO)

# Celery's and Kombu's documented defaults for the settings the rules read, so a partial mapping
# (a unit test, a config dict) audits like an app that left them alone.
CELERY_DEFAULTS: dict[str, Any] = {
    "broker_url": None,
    "broker_transport_options": {},
    "task_acks_late": False,
    "task_reject_on_worker_lost": None,
    "task_retry_on_worker_lost": False,
    "task_acks_on_failure_or_timeout": True,
    "task_acks_on_failure": None,
    "task_acks_on_timeout": None,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "worker_prefetch_multiplier": 4,
    "worker_soft_shutdown_timeout": 0.0,
    "worker_enable_soft_shutdown_on_idle": False,
}
SETTINGS = tuple(CELERY_DEFAULTS)
REDIS_DEFAULT_VISIBILITY_TIMEOUT = 3600.0
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
class Finding:
    """One risk: how bad, which setting, what it does when a worker dies, where it is shown."""

    level: str
    code: str
    setting: str
    causes: str
    scenario: str | None = None
    tasks: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tasks": list(self.tasks)}


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

    def where(self, predicate: Callable[[TaskPolicy], bool]) -> list[TaskPolicy]:
        return [p for p in self.policies if predicate(p)]


# --- resolving the effective settings --------------------------------------------------------


def effective_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the rules read: the app's value, else Celery's default."""
    return {key: config.get(key, default) for key, default in CELERY_DEFAULTS.items()}


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


def _context(
    config: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    celery_version: tuple[int, int],
    max_eta: float | None,
) -> Context:
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
    )


# --- wording -----------------------------------------------------------------------------------


def _names(policies: list[TaskPolicy]) -> tuple[str, ...]:
    return tuple(p.name for p in policies if p.name != DEFAULT_TASK)


def _setting(ctx: Context, key: str, affected: list[TaskPolicy], option: str) -> str:
    """``task_acks_late=False (Celery default)``, plus the tasks that set ``option`` themselves."""
    value = ctx.config[key]
    text = f"{key}={value!r}" + (" (Celery default)" if value == CELERY_DEFAULTS[key] else "")
    own = [p.name for p in affected if option in p.own]
    if own:
        text += f"; {option} set on task {', '.join(own)}"
    return text


def _visibility(ctx: Context) -> str:
    value = f"{ctx.visibility_timeout:g}s"
    return f"visibility_timeout={value}" + ("" if ctx.visibility_explicit else " (Kombu default)")


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
            _setting(ctx, "task_acks_late", early, "acks_late"),
            causes,
            "defaults-child-kill",
            _names(early),
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
            _setting(ctx, "task_reject_on_worker_lost", affected, "reject_on_worker_lost"),
            "acks_late alone is not enough: when the pool process dies the worker acknowledges"
            " the message and marks the task failed (WorkerLostError) instead of redelivering it:"
            " the task is lost",
            "ack-late-no-reject-child-kill",
            _names(affected),
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
                f"{_visibility(ctx)} < time_limit {longest:g}s",
                "a late-acked message still unacknowledged after visibility_timeout is handed to"
                " another worker while the first one still runs it: the task runs twice and"
                " non-idempotent side effects happen twice",
                "visibility-shorter-than-task",
                _names(too_long),
            )
        )
    if ctx.max_eta is not None and ctx.max_eta > limit:
        findings.append(
            Finding(
                ERROR,
                "visibility-shorter-than-eta",
                f"{_visibility(ctx)} < ETA/countdown {ctx.max_eta:g}s",
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
                f"task_time_limit=None with {_visibility(ctx)}",
                "nothing bounds how long a late-acked task runs: one that ever runs longer than"
                " visibility_timeout is delivered again and runs twice; set task_time_limit"
                " below visibility_timeout",
                "visibility-shorter-than-task",
                _names(unbounded),
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
            _visibility(ctx),
            "when a whole worker dies (SIGKILL, host loss, eviction) nobody rejects its messages:"
            f" they stay in Redis's unacked set and come back {when}, plus Kombu's restore sweep",
            "ack-late-kill-worker-default-visibility",
            _names(late),
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
            _setting(ctx, "worker_prefetch_multiplier", late, "prefetch"),
            f"each pool process reserves up to {multiplier} messages; when the worker dies the"
            " prefetched ones (never started) wait in the unacked set for visibility_timeout"
            " too; use worker_prefetch_multiplier=1 for long tasks",
            "ack-late-kill-worker-default-visibility",
            _names(late),
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
            _setting(ctx, "task_reject_on_worker_lost", rejecting, "reject_on_worker_lost"),
            "a message whose task kills its own process every time (segfault, OOM on every run)"
            " is requeued forever: a redelivery loop that burns a worker; and every redelivered"
            " task runs again from the start, so it must be idempotent (reclaim its own lock,"
            " guard side effects with an idempotency key, count attempts by task id)",
            "poison-reject",
            _names(rejecting),
        )
    ]


def _failure_or_timeout(ctx: Context) -> list[Finding]:
    late = ctx.where(lambda p: p.acks_late)
    if not late:
        return []
    not_acked = [p for p in late if not (p.ack_on_failure and p.ack_on_timeout)]
    setting = _setting(ctx, "task_acks_on_failure_or_timeout", late, "acks_on_failure_or_timeout")
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
            _names(not_acked),
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
    _prefetch,
    _soft_shutdown,
    _poison,
    _failure_or_timeout,
    _broker_persistence,
)


def audit(
    config: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    celery_version: tuple[int, int] = (5, 5),
    max_eta: float | None = None,
) -> list[Finding]:
    """The findings for an app's settings and its tasks' own options, most severe first.

    ``config``: ``app.conf`` keys (missing ones take Celery's defaults). ``tasks``: task name ->
    options (``acks_late``, ``reject_on_worker_lost``, ``time_limit``... ; None inherits the app
    setting). ``max_eta``: the longest ETA/countdown the code uses (config cannot show it).
    """
    ctx = _context(config, tasks or {}, celery_version, max_eta)
    findings = [finding for rule in RULES for finding in rule(ctx)]
    return sorted(findings, key=lambda f: LEVELS.index(f.level))


def exit_code(findings: list[Finding]) -> int:
    """1 when any finding is an error (the config loses or duplicates work), else 0."""
    return 1 if any(f.level == ERROR for f in findings) else 0


# --- reading a real app ------------------------------------------------------------------------


class AppImportError(RuntimeError):
    """The app cannot be imported; the message is one line naming the spec and the reason."""


def import_app(spec: str, cwd: Path) -> Any:
    """Import ``module:attr`` like ``celery -A`` does (current directory first on sys.path),
    without installing the agent: an audit must see the app exactly as production does."""
    from celery_chaos.agent.bootstrap import load_app

    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    try:
        return load_app(spec)
    except Exception as error:  # the user's module may raise anything while importing
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise AppImportError(f"{spec}: cannot import: {reason}") from None


@dataclass
class AppSettings:
    """What :func:`collect` read from an app: the audit's inputs plus context for reports."""

    config: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    celery_version: tuple[int, int]


def user_tasks(app: Any) -> dict[str, Any]:
    """The app's registered tasks without Celery's built-in ``celery.*`` ones."""
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def task_options(task: Any) -> dict[str, Any]:
    return {option: getattr(task, option, None) for option in TASK_OPTIONS}


def collect(app: Any) -> AppSettings:
    """Read an imported app's effective settings and every task's delivery options."""
    import celery

    config = {key: app.conf.get(key, default) for key, default in CELERY_DEFAULTS.items()}
    config["broker_url"] = app.conf.broker_url
    major, minor = (int(part) for part in celery.__version__.split(".")[:2])
    tasks = {name: task_options(task) for name, task in user_tasks(app).items()}
    return AppSettings(config, tasks, (major, minor))


def redact(url: Any) -> Any:
    """A broker URL with its password masked, for printing."""
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url) if isinstance(url, str) else url


def report_document(app_spec: str, settings: AppSettings, findings: list[Finding]) -> dict:
    """The ``--json`` output."""
    config = dict(settings.config) | {"broker_url": redact(settings.config["broker_url"])}
    return {
        "app": app_spec,
        "celery_version": ".".join(map(str, settings.celery_version)),
        "settings": config,
        "tasks": settings.tasks,
        "findings": [f.as_dict() for f in findings],
        "exit_code": exit_code(findings),
    }
