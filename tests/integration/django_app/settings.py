"""Settings as many Django projects write them: the database from ``DATABASE_URL`` when set,
else a db.sqlite3 beside this file (``DJANGO_APP_DB`` moves it, so a test's "developer
database" lives in its own folder, not in the repository)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "celery-chaos-test-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_celery_results"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def database(url: str | None) -> dict[str, str]:
    """``postgresql://user:password@host:port/name`` as Django's DATABASES entry, or SQLite."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DJANGO_APP_DB", str(BASE_DIR / "db.sqlite3")),
        }
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": database(os.environ.get("DATABASE_URL"))}
CELERY_BROKER_URL = os.environ.get("CHAOS_BROKER_URL", "redis://localhost:6379/0")
CELERY_RESULT_BACKEND = "django-db"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
