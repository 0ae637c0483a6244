"""Which result backend the worker's app uses, and whether an attempt stores its result.

Why here: an app's result backend is part of what a client sees (``AsyncResult``), and a backend
that cannot be written makes a completed task look unfinished. Celery's trace calls
``task_postrun`` with SUCCESS even when ``mark_as_done`` raised ("Exception raised outside
body"), so the history alone cannot tell; the run reads the backend back (run.results_state).

Only the worker knows the backend its app configured, so the substitution happens here: the
placement passes the backend the harness runs for each kind (:data:`SUBSTITUTES_ENV`) and the
app's own is swapped for the one of its kind; a scenario's explicit ``results: {server: ...}``
(``CHAOS_RESULT_BACKEND``) wins; ``results: app`` passes neither and the app keeps its own.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from celery import Celery

RESULT_BACKEND_ENV = "CHAOS_RESULT_BACKEND"
# JSON {kind: url}: the backend the harness runs for an app backend of that kind (see kind_of).
SUBSTITUTES_ENV = "CHAOS_RESULT_SUBSTITUTES"
# Where the worker leaves the unmasked URL it uses, in the ledger (never in a report).
RAW_URL_KEY = "chaos:result-backend"
# worker_ready's ``result_backend_origin``: who chose the backend the workers use.
SCENARIO, HARNESS, APP = "scenario", "harness", "app"
APP_KIND = "app-kind"  # the app's own: the harness runs no backend of its kind (cache, ...)
REDIS_SCHEMES = ("redis", "rediss", "sentinel", "redis+socket")

_origins: dict[int, str | None] = {}


def kind_of(url: str | None) -> str | None:
    """The kind of result backend ``url`` names, as the substitutes are keyed: ``redis``,
    ``rpc``, ``db+postgresql`` (SQLAlchemy on PostgreSQL), ``db`` (any other SQLAlchemy), or
    the scheme for kinds the harness runs no substitute for (``django-db``, ``cache``, ...)."""
    if not url or not isinstance(url, str):
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme in REDIS_SCHEMES:
        return "redis"
    if scheme.startswith("db+postgresql"):
        return "db+postgresql"
    if scheme.startswith("db+"):
        return "db"
    if scheme.startswith("django-db"):  # ``django-db`` (or ``django-db+<where>``, reported)
        return "django-db"
    return scheme


def configured_backend(app: Celery) -> str | None:
    """The app's ``result_backend`` setting (None or "disabled": it stores nothing)."""
    url = app.conf.result_backend
    return None if not url or str(url).lower() == "disabled" else str(url)


def choose_backend(app: Celery) -> str | None:
    """Point ``app`` at the backend the run asks for; returns who chose it (None: no backend)."""
    explicit = os.environ.get(RESULT_BACKEND_ENV)
    if explicit:  # the scenario's ``results`` (chords need one)
        app.conf.result_backend = explicit
        origin: str | None = SCENARIO
    else:
        own = configured_backend(app)
        substitutes = json.loads(os.environ.get(SUBSTITUTES_ENV) or "{}")
        replacement = substitutes.get(kind_of(own) or "")
        if own and kind_of(own) == "db+postgresql":
            if replacement:  # the run's database through the app's own driver (+psycopg...)
                replacement = own.split("://", 1)[0] + "://" + replacement.split("://", 1)[1]
            else:  # no run PostgreSQL: the SQLite file
                replacement = substitutes.get("db")
        if replacement and kind_of(own) == "django-db":  # same backend, the run's database
            replacement = _use_django_database(app, replacement)
        elif replacement:
            app.conf.result_backend = replacement
        origin = (
            None if own is None else HARNESS if replacement else APP_KIND if substitutes else APP
        )
    _origins[id(app)] = origin
    return origin


_django_databases: dict[int, str] = {}
DJANGO_ALIAS = "celery_chaos_results"  # the DATABASES alias django-celery-results writes to


def _use_django_database(app: Celery, url: str) -> str | None:
    """django-db stays django-celery-results, but its models are routed to a database alias on
    the run's PostgreSQL or SQLite file (``url``): the app's own databases (a developer's
    db.sqlite3) are never opened for results, and its other models stay where its settings put
    them. The result table is created at ``worker_init`` (after Celery's Django fixup set up)."""
    try:
        from django.conf import settings
        from django.db import router

        settings.DATABASES[DJANGO_ALIAS] = django_database(url)
    except Exception:  # no Django or no settings here: the app keeps its own (said as such)
        return None
    if not any(isinstance(each, ResultsRouter) for each in settings.DATABASE_ROUTERS):
        settings.DATABASE_ROUTERS = [ResultsRouter(), *settings.DATABASE_ROUTERS]
    router.__dict__.pop("routers", None)  # a router list read already is read again
    if not _django_databases:
        from celery import signals

        signals.worker_init.connect(_create_django_results_table, weak=False)
    _django_databases[id(app)] = url
    return url


def django_database(url: str) -> dict[str, Any]:
    """A Django DATABASES entry for ``postgresql://...`` or ``sqlite:///path``."""
    if url.startswith("sqlite:///"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url[len("sqlite:///") :]}
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


class ResultsRouter:
    """Routes django_celery_results' models (and their migrations) to :data:`DJANGO_ALIAS`."""

    label = "django_celery_results"

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return DJANGO_ALIAS if model._meta.app_label == self.label else None

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if db == DJANGO_ALIAS or app_label == self.label:
            return db == DJANGO_ALIAS and app_label == self.label
        return None


def _create_django_results_table(**_: Any) -> None:
    """``migrate django_celery_results`` on the run's database, one worker at a time (a
    PostgreSQL advisory lock, or a lock file beside the SQLite file)."""
    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    connection = connections[DJANGO_ALIAS]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(72731)")  # held by this session
            call_command("migrate", "django_celery_results", database=DJANGO_ALIAS, verbosity=0)
            cursor.execute("SELECT pg_advisory_unlock(72731)")
    else:
        import fcntl

        with open(f"{connection.settings_dict['NAME']}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            call_command("migrate", "django_celery_results", database=DJANGO_ALIAS, verbosity=0)
    connection.close()  # pool processes open their own


def origin_of(app: Celery | None) -> str | None:
    return _origins.get(id(app)) if app is not None else None


def masked(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***`` (worker_ready goes into every report)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return "***"


def worker_backend(app: Celery | None) -> tuple[str | None, str | None]:
    """The result backend URL the worker's app uses (unmasked) and who chose it."""
    if app is None:
        return None, None
    own = configured_backend(app)
    if id(app) in _django_databases:  # say where: django-db+postgresql://... or +sqlite:///...
        return f"django-db+{_django_databases[id(app)]}", origin_of(app)
    if kind_of(own) == "django-db":  # the app's own (results: app): where its settings write
        where = _django_results_location()
        return (f"django-db+{where}" if where else own), origin_of(app)
    return own, origin_of(app)


def _django_results_location() -> str | None:
    """The database django-celery-results writes to, as a URL the harness reads with SQL
    (``sqlite:///abs/path`` or ``postgresql://...``); None for any other engine or error."""
    try:
        from django.db import connections, router
        from django_celery_results.models import TaskResult

        found = connections[router.db_for_write(TaskResult)].settings_dict
        if found["ENGINE"].endswith("sqlite3"):
            return f"sqlite:///{os.path.abspath(found['NAME'])}"
        if found["ENGINE"].endswith(("postgresql", "postgresql_psycopg2")):
            user = quote(found.get("USER") or "", safe="")
            password = quote(found.get("PASSWORD") or "", safe="")
            auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
            where = f"{found.get('HOST') or 'localhost'}:{found.get('PORT') or 5432}"
            return f"postgresql://{auth}{where}/{found['NAME']}"
    except Exception:  # no Django, no app registry, an odd engine: say only "django-db"
        return None
    return None


def stores_result(task: Any) -> bool:
    """Whether this attempt's outcome goes to a result backend: the task (or this call) does not
    ignore its result (``task_ignore_result`` is the default of ``Task.ignore_result``) and the
    backend is not Celery's DisabledBackend."""
    try:
        from celery.backends.base import DisabledBackend

        try:
            from celery.app.task import get_actual_ignore_result
        except ImportError:  # Celery before 5.5: the request's option, else the task's
            ignored = getattr(task.request, "ignore_result", None) or task.ignore_result
        else:
            ignored = get_actual_ignore_result(task, task.request)
        return not ignored and not isinstance(task.backend, DisabledBackend)
    except Exception:  # never let bookkeeping cost the attempt_start record
        return False
