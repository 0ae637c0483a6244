"""Checks that need Celery or the user's app, made before anything is started.

The schema (:mod:`celery_chaos.core.scenario`) catches what a file says wrongly on its own; this
catches what only Celery can tell: a setting name Celery does not know (a typo like
``task_acks_lat`` would silently test the default), a ``workers.app`` that cannot be imported,
and workload task names that app does not register (a worker would discard such a message, and
the run would report a loss the configuration never caused). The app is imported once, here, in
this process, the way ``celery -A`` imports it (current folder first on ``sys.path``, the
scenario's ``workers.env`` set), so a bad app costs a one-line error instead of a 60 s wait for
workers that never become ready.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.core.workflows import task_paths
from celery_chaos.placements.worker_command import APP_ENV, BOOTSTRAP_APP
from celery_chaos.run.versions import CELERY_SINCE


@cache
def _celery_settings() -> tuple[frozenset[str], dict[str, str]]:
    """Every setting name Celery knows, and old-style names mapped to their new ones."""
    from celery.app import defaults

    return frozenset(defaults.DEFAULTS), dict(defaults._TO_NEW_KEY)


def setting_problem(key: str) -> str | None:
    """Why ``key`` is not a Celery setting (with the closest real one), or None if it is."""
    known, renamed = _celery_settings()
    if key in known or key in CELERY_SINCE:  # a newer Celery's: the run checks the workers'
        return None
    if key in renamed:
        return f"an old-style setting name; write {renamed[key]}"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"not a Celery setting{hint}"


def check_settings(scenario: Scenario, source: str) -> None:
    """Every ``celery:`` key is a Celery setting or listed in ``extension_settings``."""
    for key in scenario.celery:
        if key in scenario.extension_settings:
            continue
        problem = setting_problem(key)
        if problem is not None:
            raise ScenarioError(
                f"{source}: celery.{key}: {problem}; a setting of a Celery extension goes in"
                " extension_settings too"
            )


def app_spec(scenario: Scenario) -> str:
    """The user's app the workers run (through the bootstrap, the app it is told to load)."""
    spec = scenario.workers.app
    if spec == BOOTSTRAP_APP:
        return scenario.workers.env.get(APP_ENV, spec)
    return spec


@contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    """``extra`` set in ``os.environ`` while the app is imported, then restored."""
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@cache
def registered_tasks(spec: str, env: tuple[tuple[str, str], ...], cwd: Path) -> frozenset[str]:
    """Import the app once per (spec, env) and return the task names it registers (the
    ``include``/``imports`` modules and autodiscovered ones loaded, as a worker loads them)."""
    from celery_chaos.agent import apps

    with _environment(dict(env)):
        try:
            app = apps.import_app(spec, cwd)
        except SystemExit as error:  # a module that exits while imported
            raise apps.AppImportError(f"{spec}: cannot import: it exited ({error})") from None
        try:
            app.loader.import_default_modules()
            return frozenset(app.tasks.keys())
        except (Exception, SystemExit) as error:  # the user's task modules may raise anything
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            raise apps.AppImportError(f"{spec}: cannot load its tasks: {reason}") from None


def check_app(scenario: Scenario, source: str, cwd: Path, workload: bool = True) -> None:
    """``workers.app`` imports and (with ``workload``) registers every workload task."""
    from celery_chaos.agent import apps

    spec = app_spec(scenario)
    env = tuple(sorted(scenario.workers.env.items()))
    try:
        tasks = registered_tasks(spec, env, cwd.resolve())
    except apps.AppImportError as error:
        raise ScenarioError(f"{source}: workers.app: {error}") from None
    for i, item in enumerate(scenario.workload if workload else []):
        for path, name in task_paths(item):
            if name not in tasks:
                close = difflib.get_close_matches(name, tasks, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ScenarioError(
                    f"{source}: workload[{i}].{path}: {name!r} is not registered in {spec}{hint}"
                )


def preflight(
    scenario: Scenario,
    source: str,
    *,
    import_app: bool = True,
    cwd: Path | None = None,
    workload: bool = True,
) -> None:
    """Every check that needs Celery, before anything starts; raises :class:`ScenarioError`.

    ``import_app=False`` when the app lives only in a worker image (docker ``--worker-image``
    or ``workers.image``): it cannot be imported here, the image is its own check.
    ``workload=False`` when the workload is a placeholder (a ``chaos`` marker's environment:
    its tests dispatch by name later)."""
    check_settings(scenario, source)
    if import_app and scenario.workers.image is None:
        check_app(scenario, source, cwd or Path.cwd(), workload)


def checker(**options: Any) -> Callable[[Scenario, str], None]:
    """``preflight`` with fixed options, as ``load_suite(check=...)`` takes it."""
    return lambda scenario, source: preflight(scenario, source, **options)
