"""A real PostgreSQL server for one run (``services.postgres`` on the local placement).

Debian's binaries (``initdb``, ``postgres``), a fresh cluster in the run's folder, 127.0.0.1 at a
random free port, no Unix socket, user/password ``chaos``/``chaos``, the scenario's database.
PostgreSQL refuses to run as root, so a root harness runs it as the ``postgres`` uid (else
``nobody``) with the cluster's folder owned by that uid; where that uid cannot reach the run's
folder (a 0700 parent such as pytest's), the cluster lives in a private temporary folder instead.
The server is one process group started like every other (PDEATHSIG, recorded in the run's state
file; its backends exit by themselves when the postmaster dies); :meth:`discard` stops it and
removes the cluster, keeping only ``logs/postgres.log``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from celery_chaos.placements.local import processes
from celery_chaos.placements.ports import free_port
from celery_chaos.services import postgres

READY_DEADLINE = 15.0
INITDB_TIMEOUT = 60.0
UNPRIVILEGED_USERS = ("postgres", "nobody")
# A throwaway cluster: never synced to disk (a crash of the OS is no fault we inject; the
# postmaster's own crashes and restarts behave the same either way).
SERVER_SETTINGS = ("fsync=off", "full_page_writes=off", "unix_socket_directories=")


class PostgresUnavailable(processes.ServerUnavailable):
    """No PostgreSQL binaries, or the server would not start (the reason says which)."""


def server_uid() -> int | None:
    """The uid the server runs as: ours unless we are root (then ``postgres``, else ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and no unprivileged user (postgres, nobody)")


class PostgresServer:
    """One fresh cluster for a run: :meth:`start`, :attr:`url`, :meth:`discard`."""

    name = "postgres"

    def __init__(self, run_dir: Path, logs_dir: Path, database: str):
        self.run_dir = run_dir
        self.log_path = logs_dir / "postgres.log"
        self.database = database
        self.port = 0
        self.home: Path | None = None  # the cluster's folder (removed by discard)
        self.process: subprocess.Popen | None = None
        self.on_spawn: Callable[[subprocess.Popen], None] | None = None
        self.on_folder: Callable[[Path], None] | None = None  # told where the cluster lives

    @property
    def url(self) -> str:
        return postgres.url("127.0.0.1", self.port, self.database)

    def start(self) -> None:
        """initdb, start, wait until it answers, create the database. Raises
        :class:`PostgresUnavailable` with the reason (a log's last lines) within seconds."""
        try:
            binaries = postgres.bin_dir()
        except postgres.PostgresError as error:
            raise PostgresUnavailable(str(error)) from None
        uid = server_uid()
        self.home = self._make_home(uid)
        data = self.home / "data"
        self._initdb(binaries, data, uid)
        self.port = free_port()
        command = [str(binaries / "postgres"), "-D", str(data), "-p", str(self.port)]
        command += ["-c", "listen_addresses=127.0.0.1"]
        for setting in SERVER_SETTINGS:
            command += ["-c", setting]
        self.process = processes.spawn(command, self.log_path, user=uid)
        if self.on_spawn is not None:
            self.on_spawn(self.process)
        self._wait_ready()
        try:
            admin = postgres.url("127.0.0.1", self.port, "postgres")
            postgres.psql(admin, f'CREATE DATABASE "{self.database}"')
        except postgres.PostgresError as error:
            raise PostgresUnavailable(f"postgres: CREATE DATABASE failed: {error}") from None

    def _make_home(self, uid: int | None) -> Path:
        """A folder for the cluster the server's uid owns: in the run's folder if that uid can
        reach it, else a private temporary one."""
        home = self.run_dir.resolve() / "postgres"
        home.mkdir(parents=True, exist_ok=True)
        if uid is not None:
            os.chown(home, uid, -1)
            if not _reachable(home, uid):
                shutil.rmtree(home, ignore_errors=True)
                home = Path(tempfile.mkdtemp(prefix="celery-chaos-pg-"))
                os.chown(home, uid, -1)
        if self.on_folder is not None:
            self.on_folder(home)
        return home

    def _initdb(self, binaries: Path, data: Path, uid: int | None) -> None:
        assert self.home is not None
        password = self.home / "password"
        password.write_text(postgres.PASSWORD + "\n")
        if uid is not None:
            os.chown(password, uid, -1)
        command = [
            str(binaries / "initdb"), "-D", str(data), "-U", postgres.USER,
            f"--pwfile={password}", "-A", "scram-sha-256", "-E", "UTF8", "--locale=C",
            "--no-sync", "--no-instructions",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            try:
                done = subprocess.run(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=INITDB_TIMEOUT,
                    **processes._as_user(uid),
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise PostgresUnavailable(f"postgres: initdb failed: {error}") from None
        password.unlink(missing_ok=True)
        if done.returncode != 0:
            raise PostgresUnavailable(f"postgres: initdb failed: {self._log_tail()}")

    def _wait_ready(self) -> None:
        """Until ``pg_isready`` says it accepts connections, or the server exits."""
        assert self.process is not None
        ready = [str(postgres.bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1"]
        ready += ["-p", str(self.port), "-d", "postgres", "-t", "1"]
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited at start: {self._log_tail()}")
            if subprocess.run(ready, capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise PostgresUnavailable(
            f"postgres not ready after {READY_DEADLINE:g}s: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            return postgres.tail(self.log_path.read_text(errors="replace"), 4)
        except OSError:
            return "(no log)"

    def discard(self) -> None:
        """Stop the server (fast shutdown, SIGKILL after a grace) and remove the cluster."""
        if self.process is not None:
            processes.stop(self.process, sig=signal.SIGINT, grace=5)
            self.process = None
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None


def _reachable(folder: Path, uid: int) -> bool:
    """Whether ``uid`` can write in ``folder`` (every parent traversable): asked as that uid."""
    check = ["test", "-w", str(folder), "-a", "-x", str(folder)]
    try:
        return subprocess.run(check, timeout=10, **processes._as_user(uid)).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
