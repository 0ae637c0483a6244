"""Read an invariant's value from a URL: SQL (PostgreSQL via psql, or an SQLite file), a Redis
key-pattern count, or a glob count under a folder. Each raises :class:`ReadError` with a one-line
reason; the run turns that into an invariant that could not be read (never a held one)."""

from __future__ import annotations

import glob
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis

from celery_chaos.services import postgres

SCAN_COUNT = 1000


class ReadError(RuntimeError):
    """The state could not be read (the message says why, on one line)."""


def read_sql(url: str, sql: str) -> float:
    """One number from ``sql`` run against ``url`` (``postgresql://`` or ``sqlite:///path``)."""
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        plain = url.replace(scheme + "://", "postgresql://", 1)
        try:
            return postgres.scalar(plain, sql)
        except postgres.PostgresError as error:
            raise ReadError(str(error)) from None
    if scheme == "sqlite":
        return _sqlite_scalar(sqlite_path(url), sql)
    raise ReadError(f"url {scheme}://...: sql invariants read postgresql:// or sqlite:/// urls")


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` / ``sqlite:////abs/path.db`` (SQLAlchemy's spelling)."""
    return Path(unquote(url.split("sqlite:///", 1)[-1]))


def _sqlite_scalar(path: Path, sql: str) -> float:
    if not path.exists():
        raise ReadError(f"sqlite file {path} does not exist")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
            rows = connection.execute(sql).fetchall()
    except sqlite3.Error as error:
        raise ReadError(f"sqlite {path}: {error}") from None
    if len(rows) != 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], int | float):
        raise ReadError(f"expected one number, got {rows[:2]!r}")
    return float(rows[0][0])


def count_redis_keys(url: str, pattern: str) -> int:
    """How many keys match ``pattern`` (SCAN, never KEYS: the app's Redis is not blocked)."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
        try:
            return sum(1 for _ in client.scan_iter(match=pattern, count=SCAN_COUNT))
        finally:
            client.close()
    except (redis.RedisError, ValueError) as error:
        raise ReadError(f"redis: {type(error).__name__}: {error}") from None


def count_paths(root: Path, pattern: str) -> int:
    """How many paths match ``pattern`` (``**`` recursive) relative to ``root``."""
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise ReadError(f"path {pattern!r}: must be relative to the workers' folder, without ..")
    return len(glob.glob(pattern, root_dir=root, recursive=True))
