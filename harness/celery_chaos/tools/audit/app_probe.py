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


def plain(value: Any) -> Any:
    """``value`` as JSON keeps it, or its text (a timedelta, a class, a callable...)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return str(value)


def collect(spec: str, defaults: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
    """The app's effective settings, its tasks' options, Celery's version, pool and strays."""
    import celery

    from celery_chaos.tools.audit.strays import strays

    app = import_app(spec, Path.cwd())
    config = {key: app.conf.get(key, default) for key, default in defaults.items()}
    config["broker_url"] = app.conf.broker_url
    app.loader.import_default_modules()
    tasks = {
        name: {option: getattr(task, option, None) for option in options}
        for name, task in app.tasks.items()
        if not name.startswith("celery.")
    }
    return {
        "config": plain(config),
        "tasks": plain(tasks),
        "celery_version": celery.__version__,
        "pool": str(app.conf.get("worker_pool") or "prefork"),
        "strays": [plain(vars(stray)) for stray in strays(app)],
    }


def main() -> int:
    wanted = json.load(sys.stdin)
    try:
        found = collect(sys.argv[1], wanted["defaults"], wanted["options"])
    except AppImportError as error:
        found = {"import_error": str(error)}
    except Exception as error:  # finalizing the app imports the user's task modules
        found = {"error": f"{type(error).__name__}: {error}".splitlines()[0]}
    print("\n" + MARK + json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
