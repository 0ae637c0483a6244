"""The ``celery worker`` command a backend launches: the app loaded through the agent's
bootstrap, the arguments every backend passes, and the result backend it is given."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from celery_chaos.core.scenario import ResultsSpec

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


def worker_arguments(app: str, name: str, pool: str, concurrency: int) -> list[str]:
    """``celery worker`` arguments after the executable. Gossip, mingle and heartbeats are off:
    they add start-up time and remote-control chatter that no scenario measures."""
    return [
        "-A", app, "worker", "-n", name, "-P", pool, "-c", str(concurrency), "-l", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def results_url(spec: ResultsSpec | None, ledger_url: str, broker_url: str) -> str | None:
    """``results: {server: broker|ledger, db: N}`` as a Redis URL: database N of that server."""
    if spec is None:
        return None
    parts = urlsplit(broker_url if spec.server == "broker" else ledger_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{spec.db}", parts.query, ""))
