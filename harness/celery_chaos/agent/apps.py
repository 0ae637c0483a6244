"""Finding a user's Celery app by name, the way ``celery -A`` does.

Used in workers (the bootstrap) and in the harness before anything starts (the preflight checks
that the app imports and registers the workload's tasks; audit and repro read its settings).
"""

from __future__ import annotations

import sys
from pathlib import Path

from celery import Celery
from celery.app.utils import find_app
from celery.utils.imports import symbol_by_name


class AppImportError(RuntimeError):
    """The app cannot be imported; the message is one line naming the spec and the reason."""


def load_app(spec: str) -> Celery:
    """Find the Celery app the way ``celery -A`` does: ``module:attribute``,
    ``module.attribute``, or a module (its ``app``/``celery`` attribute, or ``module.celery``)."""
    target = find_app(spec, symbol_by_name=symbol_by_name)
    if not isinstance(target, Celery):
        raise TypeError(f"{spec} is a {type(target).__name__}, not a Celery app")
    return target


def import_app(spec: str, cwd: Path) -> Celery:
    """Import ``spec`` with ``cwd`` first on sys.path (as ``celery -A`` run there would), without
    installing the agent: an audit must see the app exactly as production does."""
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    try:
        return load_app(spec)
    except Exception as error:  # the user's module may raise anything while importing
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise AppImportError(f"{spec}: cannot import: {reason}") from None
