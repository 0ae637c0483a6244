"""Worker entry point that instruments a user's app without editing it.

``CHAOS_APP=myproject.celery:app celery -A celery_chaos.agent.bootstrap worker`` imports the
user's app,
installs the agent on it and hands it to ``celery worker``.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.utils.imports import symbol_by_name

from celery_chaos import install

APP_ENV = "CHAOS_APP"


def load_app(spec: str) -> Celery:
    """Import ``module:attribute`` (or ``module.attribute``) and return the Celery app."""
    target = symbol_by_name(spec.replace(":", ".") if ":" in spec else spec)
    if not isinstance(target, Celery):
        raise TypeError(f"{spec} is a {type(target).__name__}, not a Celery app")
    return target


app = install(load_app(os.environ[APP_ENV])) if APP_ENV in os.environ else None
