"""The ``celery worker`` command a backend launches: the app loaded through the agent's
bootstrap, the arguments every placement passes (Celery's defaults otherwise, and the scenario's
``workers.args``: docs/worker-command.md), and the result backend it is given."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from celery_chaos.agent import results as agent_results
from celery_chaos.core.scenario_parts import ResultsSpec, WorkersSpec

BOOTSTRAP_APP = "celery_chaos.agent.bootstrap"
APP_ENV = "CHAOS_APP"  # the app the bootstrap loads (celery_chaos.agent.bootstrap.APP_ENV)


def worker_app(app: str) -> tuple[str, dict[str, str]]:
    """The ``-A`` argument and the extra environment that run ``app`` with the agent loaded:
    always through the bootstrap, so an app that never calls ``install(app)`` (a Django
    project's ``proj.celery:app``) is instrumented too; ``install`` is idempotent, so an app
    that does call it is not instrumented twice."""
    if app == BOOTSTRAP_APP:  # already the bootstrap (its CHAOS_APP is in workers.env)
        return app, {}
    return BOOTSTRAP_APP, {APP_ENV: app}


def worker_arguments(
    app: str, name: str, pool: str, concurrency: int, extra: Sequence[str] = ()
) -> list[str]:
    """``celery worker`` arguments after the executable: what identifies and sizes the worker,
    then the team's own options (``workers.args``), which win. Nothing else: gossip, mingle and
    heartbeats stay Celery's defaults, since turning them off changes what a dying worker does
    (docs/worker-command.md). The harness's ``-l INFO`` yields to a ``-l`` in ``extra``."""
    arguments = ["-A", app, "worker", "-n", name, "-P", pool, "-c", str(concurrency)]
    if not any(
        arg in ("-l", "--loglevel") or arg.startswith(("-l", "--loglevel=")) for arg in extra
    ):
        arguments += ["-l", "INFO"]
    return [*arguments, *extra]


def launch_arguments(app: str, name: str, spec: WorkersSpec) -> list[str]:
    """:func:`worker_arguments` for a scenario's ``workers`` section."""
    return worker_arguments(app, name, spec.pool, spec.concurrency, spec.args)


# ``workers.entrypoint: shell``: the shell stays the worker's main process and forwards no signal.
# As a container's PID 1 a shell has no handler for SIGTERM, so the kernel drops the signal (the
# PID-1 trap); elsewhere a plain ``sh`` would die of it and orphan celery instead, so a handler
# that does nothing gives it PID 1's deafness everywhere: the shell waits for celery, which never
# hears the signal, until a SIGKILL ends the whole group (or container).
DEAF_SHELL = "trap : HUP INT QUIT TERM; "


def entrypoint_command(command: list[str], entrypoint: str | None) -> list[str]:
    """``command`` as ``workers.entrypoint`` starts it: as is (None), under a shell that
    forwards no signal (``shell``), or through ``sh -c "exec ..."`` (``exec``: the fix, celery
    replaces the shell and gets every signal itself)."""
    if entrypoint is None:
        return command
    prefix = "exec " if entrypoint == "exec" else DEAF_SHELL
    return ["/bin/sh", "-c", prefix + shlex.join(command)]


def results_url(spec: ResultsSpec | str | None, ledger_url: str, broker_url: str) -> str | None:
    """``results: {server: broker|ledger, db: N}`` as a Redis URL: database N of that server
    (None for ``results: app``: the app keeps its own result backend)."""
    if not isinstance(spec, ResultsSpec):
        return None
    parts = urlsplit(broker_url if spec.server == "broker" else ledger_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{spec.db}", parts.query, ""))


# The harness's result backends for an app that configures its own (unless ``results: app``):
# a database of the ledger's Redis (never faulted, like ``results: {server: ledger}``), an SQLite
# file in the run's folder, or the run's PostgreSQL for an app on SQLAlchemy + PostgreSQL.
HARNESS_RESULTS_DB = 1
RESULTS_SQLITE = "celery-results.sqlite"
DJANGO_RESULTS_SQLITE = "django-celery-results.sqlite3"


def substitute_backends(
    ledger_url: str, files_dir: str, database_url: str | None = None
) -> dict[str, str]:
    """The backend the harness runs for each kind of app backend (agent.results.kind_of), as a
    worker reaches it: redis -> the ledger's Redis, rpc -> the run's broker (``rpc://`` sends
    on the app's broker connection, which is the run's), SQLAlchemy -> the SQLite file (or,
    for PostgreSQL apps with ``services.postgres``, the run's database), django-db -> the run's
    PostgreSQL, else its own SQLite file. Other kinds (cache, ...) are not listed: the app
    keeps its own."""
    parts = urlsplit(ledger_url)
    redis = urlunsplit((parts.scheme, parts.netloc, f"/{HARNESS_RESULTS_DB}", parts.query, ""))
    found = {"redis": redis, "rpc": "rpc://", "db": f"db+sqlite:///{files_dir}/{RESULTS_SQLITE}"}
    found["django-db"] = database_url or f"sqlite:///{files_dir}/{DJANGO_RESULTS_SQLITE}"
    if database_url:
        found["db+postgresql"] = f"db+{database_url}"
    return found


def results_env(
    spec: ResultsSpec | str | None,
    ledger_url: str,
    broker_url: str,
    files_dir: str,
    database_url: str | None = None,
) -> dict[str, str]:
    """The agent's result-backend variables: the scenario's explicit ``results`` server, the
    harness's substitutes (no ``results``), or nothing (``results: app``: the app's own)."""
    url = results_url(spec, ledger_url, broker_url)
    if url:
        return {agent_results.RESULT_BACKEND_ENV: url}
    if spec == "app":
        return {}
    found = substitute_backends(ledger_url, files_dir, database_url)
    return {agent_results.SUBSTITUTES_ENV: json.dumps(found)}
