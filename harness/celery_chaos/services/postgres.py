"""PostgreSQL as a run's service: its credentials, its URL, and ``psql`` (Debian's client binary,
so the harness needs no Python driver) to run setup SQL and read an invariant's scalar."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

USER = "chaos"
PASSWORD = "chaos"
PORT = 5432  # inside a container; a local server gets a random free port
# Debian's layout (postgresql-NN): newest version first; $CHAOS_PG_BIN wins.
BIN_ENV = "CHAOS_PG_BIN"
DEBIAN_BINS = "/usr/lib/postgresql/*/bin"
PSQL_TIMEOUT = 60.0


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
    """``psql`` beside the server binaries, else on PATH."""
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


def psql(database_url: str, sql: str, timeout: float = PSQL_TIMEOUT) -> str:
    """Run ``sql`` (one or more statements) with ``psql``, stopping at the first error; returns
    its unaligned, tuples-only output. Raises :class:`PostgresError` with psql's last lines."""
    command = [psql_binary(), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database_url]
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
