"""Audit's import of an app on the app's own interpreter (``celery-chaos audit --python``).

Run as ``python -m celery_chaos.tools.audit.app_probe SPEC`` from the agent's staged folder
(``run.interpreter.stage_agent``) with the settings to read as JSON on stdin; prints what
``tools.audit.app.collect`` reads, as JSON. Only the standard library, Celery and the agent's
own modules: the app's environment has nothing of the harness's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from celery_chaos.agent.apps import AppImportError, import_app

# Starts the line that carries the answer: the app may print while it is imported.
MARK = "celery-chaos-app-probe: "
# The queue the harness's client publishes to when none is given (None in a route: that one).
CLIENT_DEFAULT_QUEUE = "celery"


def plain(value: Any) -> Any:
    """``value`` as JSON keeps it, or its text (a timedelta, a class, a callable...)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return str(value)


def consumed_queue(
    app: Any, task: str, args: list[Any], kwargs: dict[str, Any], queues: list[str] | None = None
) -> str | None:
    """The queue to publish to so the workers consume it: the task's route when a worker
    consumes that queue (the app's queues, or ``queues`` from ``-Q``), else the app's default
    queue, or the first ``-Q`` queue (None: the client's own)."""
    try:
        consumed = queues or list(app.amqp.queues.keys())
        route = app.amqp.router.route({}, task, args, kwargs)
        name = route["queue"].name
    except Exception:  # an unusual router: fall back to the default queue
        consumed, name = queues or [], None
    if name not in consumed:
        name = queues[0] if queues else app.conf.task_default_queue
    return None if name == CLIENT_DEFAULT_QUEUE else name


def repro_view(app: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """What repro reads besides the audit's: each asked route's consumed queue and the app's
    own result backend (``tools.repro.app.inspect_app`` on a foreign interpreter)."""
    from celery_chaos.agent.results import configured_backend

    queues = wanted.get("queues")
    routes = [
        consumed_queue(app, task, args, kwargs, queues) for task, args, kwargs in wanted["routes"]
    ]
    return {"routes": routes, "result_backend": configured_backend(app)}


def collect(
    spec: str,
    defaults: dict[str, Any],
    options: dict[str, str],
    repro: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The app's effective settings, its tasks' options, Celery's version, pool and strays;
    with ``repro`` (its ``--set`` overrides applied first) what repro reads too."""
    import celery

    from celery_chaos.tools.audit.strays import strays

    app = import_app(spec, Path.cwd())
    if repro is not None:
        app.conf.update(repro.get("overrides") or {})
    config = {key: app.conf.get(key, default) for key, default in defaults.items()}
    config["broker_url"] = app.conf.broker_url
    app.loader.import_default_modules()
    tasks = {
        name: {option: getattr(task, option, None) for option in options}
        for name, task in app.tasks.items()
        if not name.startswith("celery.")
    }
    found = repro_view(app, repro) if repro is not None else {}
    return found | {
        "config": plain(config),
        "tasks": plain(tasks),
        "celery_version": celery.__version__,
        "pool": str(app.conf.get("worker_pool") or "prefork"),
        "strays": [plain(vars(stray)) for stray in strays(app)],
    }


def main() -> int:
    wanted = json.load(sys.stdin)
    try:
        found = collect(sys.argv[1], wanted["defaults"], wanted["options"], wanted.get("repro"))
    except AppImportError as error:
        found = {"import_error": str(error)}
    except Exception as error:  # finalizing the app imports the user's task modules
        found = {"error": f"{type(error).__name__}: {error}".splitlines()[0]}
    print("\n" + MARK + json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
