"""Worker entry point that instruments a user's app without editing it.

``CHAOS_APP=myproject.celery:app celery -A celery_chaos.agent.bootstrap worker`` imports the
user's app,
installs the agent on it and hands it to ``celery worker``.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.app.utils import find_app
from celery.utils.imports import symbol_by_name

from celery_chaos import install

APP_ENV = "CHAOS_APP"


def load_app(spec: str) -> Celery:
    """Find the Celery app the way ``celery -A`` does: ``module:attribute``,
    ``module.attribute``, or a module (its ``app``/``celery`` attribute, or ``module.celery``)."""
    target = find_app(spec, symbol_by_name=symbol_by_name)
    if not isinstance(target, Celery):
        raise TypeError(f"{spec} is a {type(target).__name__}, not a Celery app")
    return target


app = install(load_app(os.environ[APP_ENV])) if APP_ENV in os.environ else None
