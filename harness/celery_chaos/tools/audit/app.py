"""Reading a real app: import it as ``celery -A`` does and collect what the rules need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from celery_chaos.tools.audit.rules import Finding, exit_code
from celery_chaos.tools.audit.settings import CELERY_DEFAULTS, TASK_OPTIONS
from celery_chaos.tools.audit.strays import Stray, strays


@dataclass
class AppSettings:
    """What :func:`collect` read from an app: the audit's inputs plus context for reports."""

    config: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    celery_version: tuple[int, int]
    pool: str = "prefork"  # the app's worker_pool
    strays: list[Stray] = field(default_factory=list)  # settings it may never read

    def deploy(self, grace: float | None = None) -> dict[str, Any]:
        """The ``audit(**deploy)`` inputs this app gives, with the user's ``--grace``."""
        return {"grace": grace, "pool": self.pool, "strays": tuple(self.strays)}


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
    pool = str(app.conf.get("worker_pool") or "prefork")
    return AppSettings(config, tasks, (major, minor), pool, strays(app))


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
