"""PostgreSQL as a run's service: its credentials, its URL, and ``psql`` (Debian's client binary,
so the harness needs no Python driver) to run setup SQL and read an invariant's scalar.

A host without ``psql`` can still reach a server that runs in a container: the placement that
started it registers a runner (:func:`register_container_psql`) that runs the container's own
``psql`` (``docker exec``), and :func:`psql` falls back to it for that server's address.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

USER = "chaos"
PASSWORD = "chaos"
PORT = 5432  # inside a container; a local server gets a random free port
# Debian's layout (postgresql-NN): newest version first; $CHAOS_PG_BIN wins.
BIN_ENV = "CHAOS_PG_BIN"
DEBIAN_BINS = "/usr/lib/postgresql/*/bin"
PSQL_TIMEOUT = 60.0
PSQL_OPTIONS = ("-X", "-q", "-At", "-v", "ON_ERROR_STOP=1")
# Runs psql where the server is: (psql's arguments, the SQL for its stdin, timeout) ->
# (exit code or None when it timed out, stdout, stderr).
ContainerPsql = Callable[[list[str], str, float], tuple[int | None, str, str]]
_IN_CONTAINER: dict[tuple[str, int], ContainerPsql] = {}


class PostgresError(RuntimeError):
    """psql failed (the message is its output's last lines) or no PostgreSQL binaries exist."""


def url(host: str, port: int, database: str) -> str:
    """The ``DATABASE_URL`` of the run's database, as a client at ``host:port`` reaches it."""
    return f"postgresql://{USER}:{PASSWORD}@{host}:{port}/{database}"


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def bin_dir() -> Path:
    """Where ``initdb``, ``postgres`` and ``psql`` are: $CHAOS_PG_BIN, else Debian's newest."""
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    found = sorted(glob.glob(DEBIAN_BINS), key=_version, reverse=True)
    for candidate in found:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresError(
        "no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin or on PATH"
        " (apt-get install postgresql, or set CHAOS_PG_BIN)"
    )


def psql_binary() -> str:
    """``psql`` beside the server binaries, else on PATH ($CHAOS_PG_BIN set: only there)."""
    if os.environ.get(BIN_ENV):
        candidate = Path(os.environ[BIN_ENV]) / "psql"
        if candidate.exists():
            return str(candidate)
        raise PostgresError(f"no psql in ${BIN_ENV} ({os.environ[BIN_ENV]})")
    try:
        candidate = bin_dir() / "psql"
        if candidate.exists():
            return str(candidate)
    except PostgresError:
        pass
    on_path = shutil.which("psql")
    if on_path:
        return on_path
    raise PostgresError("no psql binary (apt-get install postgresql-client)")


def tail(output: str, lines: int = 8) -> str:
    """The last ``lines`` non-empty lines of ``output``, joined for a one-line reason."""
    kept = [line.rstrip() for line in output.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def _address(database_url: str) -> tuple[str, int]:
    parts = urlsplit(database_url)
    return parts.hostname or "", parts.port or PORT


def register_container_psql(database_url: str, runner: ContainerPsql) -> None:
    """Reach the server at ``database_url``'s address with ``runner`` when the host has no
    ``psql`` (the container's own, through ``docker exec``)."""
    _IN_CONTAINER[_address(database_url)] = runner


def unregister_container_psql(database_url: str) -> None:
    _IN_CONTAINER.pop(_address(database_url), None)


def inside_url(database_url: str) -> str:
    """``database_url`` as a psql inside the server's container reaches it (127.0.0.1:5432)."""
    parts = urlsplit(database_url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{PORT}" if credentials else f"127.0.0.1:{PORT}"
    return urlunsplit(parts._replace(netloc=netloc))


def psql(database_url: str, sql: str, timeout: float = PSQL_TIMEOUT) -> str:
    """Run ``sql`` (one or more statements) with ``psql``, stopping at the first error; returns
    its unaligned, tuples-only output. Raises :class:`PostgresError` with psql's last lines."""
    try:
        binary = psql_binary()
    except PostgresError:
        runner = _IN_CONTAINER.get(_address(database_url))
        if runner is None:
            raise
        return _in_container(runner, database_url, sql, timeout)
    command = [binary, *PSQL_OPTIONS, "-d", database_url]
    try:
        done = subprocess.run(
            command,
            input=sql,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ | {"PGCONNECT_TIMEOUT": "5"},
        )
    except subprocess.TimeoutExpired:
        raise PostgresError(f"psql did not finish within {timeout:g}s") from None
    if done.returncode != 0:
        raise PostgresError(tail(done.stderr + done.stdout))
    return done.stdout


def _in_container(runner: ContainerPsql, database_url: str, sql: str, timeout: float) -> str:
    exitcode, out, err = runner([*PSQL_OPTIONS, "-d", inside_url(database_url)], sql, timeout)
    if exitcode is None:
        raise PostgresError(f"psql (in the container) did not finish within {timeout:g}s")
    if exitcode != 0:
        raise PostgresError(tail(err + out))
    return out


def scalar(database_url: str, sql: str) -> float:
    """The single number ``sql`` selects (an invariant's value). Raises :class:`PostgresError`
    when it selects no row, more than one value, or something that is not a number."""
    out = psql(database_url, sql).strip()
    rows = out.splitlines()
    if len(rows) != 1 or "|" in rows[0]:
        raise PostgresError(f"expected one number, got {len(rows)} row(s): {tail(out, 3)}")
    try:
        return float(rows[0])
    except ValueError:
        raise PostgresError(f"expected a number, got {rows[0][:80]!r}") from None
