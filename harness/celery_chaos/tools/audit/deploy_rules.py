"""The audit rules about deploys and evictions: a grace period shorter than a task may run
(``--grace``), the threads pool's warm shutdown running every prefetched task (celery#10180),
and dead config (settings written where Celery never reads them: :mod:`.strays`)."""

from __future__ import annotations

from celery_chaos.tools.audit.findings import ERROR, WARNING, Finding, task_names
from celery_chaos.tools.audit.settings import Context, TaskPolicy

THREADS_SHUTDOWN_FIXED = (5, 7)  # celery#10183 (cancel_futures=True) first shipped in 5.7.0
SECRET_HINTS = ("url", "backend", "password")


def _longest(policy: TaskPolicy) -> float | None:
    return policy.time_limit or policy.soft_time_limit


def _grace(ctx: Context) -> list[Finding]:
    """A task allowed to run longer than the grace period is SIGKILLed mid-run by a deploy."""
    if ctx.grace is None:
        return []
    grace, findings = ctx.grace, []
    over = ctx.where(lambda p: (_longest(p) or 0) >= grace)
    if over:
        longest = max(_longest(p) or 0 for p in over)
        lost = [p for p in over if not (p.acks_late and p.reject_on_worker_lost)]
        findings.append(
            Finding(
                ERROR if lost else WARNING,
                "grace-shorter-than-time-limit",
                f"--grace {grace:g}s <= time_limit {longest:g}s",
                "a deploy, eviction or scale-down sends SIGTERM and SIGKILLs the worker"
                f" {grace:g}s later: a task still running then dies mid-run"
                + (
                    "; acknowledged when it started, it is lost"
                    if lost
                    else "; late-acked, it is redelivered and runs again from the start"
                )
                + " (Celery's warm shutdown also took ~2 s after the last task in our runs:"
                " give the grace the longest task plus a margin)",
                "evict-ack-late-grace-shorter-than-task",
                task_names(over),
            )
        )
    unbounded = ctx.where(lambda p: _longest(p) is None)
    if unbounded:
        findings.append(
            Finding(
                WARNING,
                "grace-without-time-limit",
                f"--grace {grace:g}s with task_time_limit=None",
                "nothing bounds how long a task runs, so nothing says it fits the grace period:"
                " one running longer is SIGKILLed mid-run by every deploy; set a time_limit"
                " below the grace",
                "evict-ack-late-grace-shorter-than-task",
                task_names(unbounded),
            )
        )
    return findings


def _threads_warm_shutdown(ctx: Context) -> list[Finding]:
    multiplier = ctx.config["worker_prefetch_multiplier"]
    if ctx.pool != "threads" or not (isinstance(multiplier, int) and multiplier > 1):
        return []
    if ctx.celery_version >= THREADS_SHUTDOWN_FIXED:
        return []
    version = ".".join(map(str, ctx.celery_version))
    return [
        Finding(
            WARNING,
            "threads-warm-shutdown-runs-prefetched",
            f"worker_pool='threads', worker_prefetch_multiplier={multiplier}, Celery {version}",
            "on a warm shutdown (a deploy's SIGTERM) the threads pool runs every prefetched"
            f" task (up to {multiplier} per thread) instead of handing them back, so the worker"
            " overruns the grace period and the SIGKILL lands mid-task (celery#10180, fixed in"
            " Celery 5.7.0 by #10183); upgrade, or use worker_prefetch_multiplier=1",
        )
    ]


def _shown(key: str, value: object) -> str:
    if any(hint in key for hint in SECRET_HINTS) and value:
        from kombu.utils.url import maybe_sanitize_url

        return repr(maybe_sanitize_url(value) if isinstance(value, str) else "***")
    return repr(value)


def _dead_config(ctx: Context) -> list[Finding]:
    return [
        Finding(
            WARNING,
            "dead-config",
            f"{stray.where}: {stray.name}={_shown(stray.key, stray.value)}",
            f"meant for {stray.key}, but the app runs with {stray.key}="
            f"{_shown(stray.key, stray.effective)}: Celery never read it (or something"
            " overrides it), so what it was set for does not happen; pin the setting with a"
            " test that reads app.conf",
        )
        for stray in ctx.strays
        if stray.dead
    ]


DEPLOY_RULES = (_grace, _threads_warm_shutdown, _dead_config)
