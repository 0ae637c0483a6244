"""``celery-chaos audit``: the worker-death risks an app's configuration carries, found statically.

``settings`` resolves what each task will do (its own option, else the app's, else Celery's
default), ``rules`` turns that into findings, ``app`` reads a real, imported app. Each finding
names the built-in scenario that demonstrates it (``shown_by``: a command that works from any
folder, because the default suite ships inside the package).
"""

from celery_chaos.agent.apps import AppImportError, import_app
from celery_chaos.tools.audit.app import (
    AppSettings,
    collect,
    redact,
    report_document,
    task_options,
    user_tasks,
)
from celery_chaos.tools.audit.rules import (
    ERROR,
    INFO,
    LEVELS,
    RULES,
    WARNING,
    Finding,
    audit,
    exit_code,
    shown_by,
)
from celery_chaos.tools.audit.settings import (
    CELERY_DEFAULTS,
    REDIS_DEFAULT_VISIBILITY_TIMEOUT,
    TASK_OPTIONS,
    Context,
    TaskPolicy,
    broker_kind,
    broker_scheme,
    effective_config,
    resolve_task,
)

__all__ = [
    "CELERY_DEFAULTS",
    "ERROR",
    "INFO",
    "LEVELS",
    "REDIS_DEFAULT_VISIBILITY_TIMEOUT",
    "RULES",
    "TASK_OPTIONS",
    "WARNING",
    "AppImportError",
    "AppSettings",
    "Context",
    "Finding",
    "TaskPolicy",
    "audit",
    "broker_kind",
    "broker_scheme",
    "collect",
    "effective_config",
    "exit_code",
    "import_app",
    "redact",
    "report_document",
    "resolve_task",
    "shown_by",
    "task_options",
    "user_tasks",
]
