"""Worker entry point that instruments a user's app without editing it.

``CHAOS_APP=myproject.celery:app celery -A celery_chaos.agent.bootstrap worker`` imports the
user's app (found as ``celery -A`` finds it), installs the agent on it and hands it to
``celery worker``.
"""

from __future__ import annotations

import os

from celery_chaos import install
from celery_chaos.agent.apps import load_app

APP_ENV = "CHAOS_APP"

app = install(load_app(os.environ[APP_ENV])) if APP_ENV in os.environ else None
