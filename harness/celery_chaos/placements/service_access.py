"""What every placement offers about the app's own services (``services.postgres``,
``services.redis``), the workers' working directory and the readers the run's invariants use.

A placement starts the services (its own way: local processes, containers) and records each one's
URL twice: as the harness reaches it and as a worker reaches it. The rest is the same everywhere,
so it lives here: the workers' environment (``DATABASE_URL``, ``REDIS_URL``), SQL / Redis / path
readers, and the hook that runs the scenario's ``setup`` steps between the broker and the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery_chaos.services import DATABASE_URL_ENV, REDIS_URL_ENV, readers

# The workers' (and ``run:`` setup steps') working directory inside the run's folder: files an
# app writes to relative paths land in the report, never in the developer's tree.
WORK_DIR = "work"
ENV_OF_SERVICE = {"postgres": DATABASE_URL_ENV, "redis": REDIS_URL_ENV}


@dataclass(frozen=True)
class ServiceUrl:
    """One service's URL from the harness (host) and from inside a worker."""

    harness: str
    workers: str


@dataclass
class CommandResult:
    """A ``run:`` setup step's outcome: its exit code (None: timed out) and its output."""

    exitcode: int | None
    output: str


class ServiceAccess:
    """Mixed into :class:`~celery_chaos.placements.base.Placement`."""

    scenario: Any
    run_dir: Path
    work_dir: Path
    service_urls: dict[str, ServiceUrl]
    # Called once services and broker are up, before any worker starts (run.setup's steps).
    before_workers: Callable[[], None] | None

    def _init_services(self, run_dir: Path) -> None:
        self.work_dir = run_dir / WORK_DIR
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.service_urls = {}
        self.before_workers = None

    def wanted_services(self) -> dict[str, Any]:
        """The scenario's services, in start order (``postgres`` then ``redis``)."""
        spec = getattr(self.scenario, "services", None)
        found = {name: getattr(spec, name, None) for name in ENV_OF_SERVICE}
        return {name: service for name, service in found.items() if service is not None}

    def service_env(self) -> dict[str, str]:
        """``DATABASE_URL`` / ``REDIS_URL`` as the workers reach the services."""
        return {ENV_OF_SERVICE[n]: url.workers for n, url in self.service_urls.items()}

    def harness_service_env(self) -> dict[str, str]:
        """The same variables as the harness (and a local ``run:`` step) reaches them."""
        return {ENV_OF_SERVICE[n]: url.harness for n, url in self.service_urls.items()}

    def _run_setup(self) -> None:
        if self.before_workers is not None:
            self.before_workers()

    def service_url(self, name: str, url: str | None = None) -> str:
        """The URL the harness reads a service at (``url``, when given, wins)."""
        if url is not None:
            return url
        if name not in self.service_urls:
            raise readers.ReadError(f"services.{name} is not running in this run")
        return self.service_urls[name].harness

    def read_sql(self, sql: str, url: str | None = None) -> float:
        """One number from ``sql`` (the run's PostgreSQL, or ``url``; a relative
        ``sqlite:///`` path is taken from the workers' working directory)."""
        target = self.service_url("postgres", url)
        if target.startswith("sqlite:///") and not readers.sqlite_path(target).is_absolute():
            target = f"sqlite:///{self.work_dir.resolve() / readers.sqlite_path(target)}"
        return readers.read_sql(target, sql)

    def read_redis_count(self, pattern: str, url: str | None = None) -> int:
        """How many keys match ``pattern`` in the app's Redis (or ``url``)."""
        return readers.count_redis_keys(self.service_url("redis", url), pattern)

    def count_paths(self, pattern: str) -> int:
        """How many files match ``pattern`` under the workers' working directory."""
        return readers.count_paths(self.work_dir, pattern)

    def run_setup_command(self, command: str, timeout: float) -> CommandResult:
        """Run a ``run:`` setup step as the workers would (their env, cwd, services)."""
        raise NotImplementedError
