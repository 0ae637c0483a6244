"""The app's own services on the local placement (``services.postgres``, ``services.redis``) and
its ``run:`` setup steps, each a process group recorded in the run's state file like the ledger
and the broker, so a harness that dies leaves nothing behind (the watchdog removes them)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery_chaos.placements.base import Unsupported
from celery_chaos.placements.local import processes
from celery_chaos.placements.local.postgres_server import PostgresServer
from celery_chaos.placements.local.redis_server import RedisServer
from celery_chaos.placements.local.state import RunState
from celery_chaos.placements.service_access import CommandResult, ServiceUrl


class LocalServices:
    """Starts, and at the end removes, the servers a scenario's ``services`` asks for."""

    def __init__(self, run_dir: Path, logs_dir: Path, state: RunState):
        self.run_dir = run_dir
        self.logs_dir = logs_dir
        self.state = state
        self.servers: dict[str, PostgresServer | RedisServer] = {}
        self._steps = itertools.count(1)

    def start(self, wanted: dict[str, Any], log: Callable[[str], None]) -> dict[str, ServiceUrl]:
        """Start each service (``postgres`` first); a service that cannot start is
        :class:`Unsupported` (the run is not runnable) with the reason."""
        urls = {}
        for name, spec in wanted.items():
            server: PostgresServer | RedisServer
            if getattr(spec, "image", None):
                log(f"   services.{name}.image: ignored by the local backend (host binaries)")
            if name == "postgres":
                server = PostgresServer(self.run_dir, self.logs_dir, spec.database)
                server.on_folder = self.state.add_folder
            else:
                server = RedisServer("app-redis", self.logs_dir, persistence="none")
            server.on_spawn = lambda process, role=name: self.state.add_group(role, process.pid)
            self.servers[name] = server
            began = time.monotonic()
            try:
                server.start()
            except processes.ServerUnavailable as error:
                raise Unsupported(f"services.{name}: {error}") from None
            log(f"   services.{name}: ready in {time.monotonic() - began:.2f}s")
            urls[name] = ServiceUrl(server.url, server.url)  # one host: the same address
        return urls

    def run_command(
        self, command: str, env: dict[str, str], cwd: Path, timeout: float
    ) -> CommandResult:
        """Run a ``run:`` setup step in a shell: its own process group (killed at the timeout,
        recorded for the watchdog), output in ``logs/setup-<n>.log``."""
        log = self.logs_dir / f"setup-{next(self._steps)}.log"
        process = processes.spawn(["/bin/sh", "-c", command], log, env=env, cwd=cwd)
        self.state.add_group("setup", process.pid)
        try:
            exitcode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            exitcode = None
        processes.stop(process, sig=signal.SIGKILL, grace=5)  # and anything it left running
        return CommandResult(exitcode, log.read_text(errors="replace"))

    def close(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.discard()
        self.servers.clear()
