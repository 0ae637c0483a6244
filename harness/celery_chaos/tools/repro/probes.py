"""Probes: the state a task leaves behind (lock keys, counters, documents, SQL rows).

They are read after the run, once the workers are frozen, from the harness store
(``celery_chaos.store()``, the ledger Redis) or a URL, and never change what they observe.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import redis

from celery_chaos.placements import Placement
from celery_chaos.tools import audit
from celery_chaos.tools.repro.spec import RedisProbe, ReproSpec, SqlProbe

PROBE_KEY_LIMIT = 100
SQL_ROW_LIMIT = 100


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def read_key(client: redis.Redis, key: bytes) -> Any:
    """A key's value whatever its type (string, hash, list, set, sorted set)."""
    kind = client.type(key).decode()
    if kind == "string":
        return _decode(client.get(key))
    if kind == "hash":
        return {_decode(k): _decode(v) for k, v in sorted(client.hgetall(key).items())}
    if kind == "list":
        return [_decode(v) for v in client.lrange(key, 0, PROBE_KEY_LIMIT - 1)]
    if kind == "set":
        return sorted(str(_decode(v)) for v in client.smembers(key))
    if kind == "zset":
        return [[_decode(m), s] for m, s in client.zrange(key, 0, PROBE_KEY_LIMIT - 1, True)]
    return None


def _summary(probe: RedisProbe, keys: dict[str, Any], task_id: str | None) -> str:
    if probe.kind == "lock":
        if not keys:
            return f"free: no key matches {probe.redis_key_pattern}"
        owners = [
            f"{key} = {value}" + (" (the repro task)" if value == task_id else "")
            for key, value in keys.items()
        ]
        return "HELD: " + "; ".join(owners)
    if probe.kind == "counter":
        total = sum(v for v in keys.values() if isinstance(v, int))
        return f"{probe.redis_key_pattern} = {total}" + (
            " (" + ", ".join(f"{k}={v}" for k, v in keys.items()) + ")" if keys else ""
        )
    if not keys:
        return f"no key matches {probe.redis_key_pattern}"
    return "; ".join(f"{key} = {json.dumps(value, default=str)}" for key, value in keys.items())


def read_redis_probe(
    probe: RedisProbe, store: redis.Redis | None, task_id: str | None
) -> dict[str, Any]:
    client = redis.Redis.from_url(probe.url) if probe.url else store
    source = audit.redact(probe.url) if probe.url else "harness store"
    result: dict[str, Any] = {
        "name": probe.name or probe.redis_key_pattern,
        "kind": probe.kind,
        "pattern": probe.redis_key_pattern,
        "source": source,
    }
    if client is None:
        return result | {"error": "the harness store was not started", "summary": "unavailable"}
    try:
        found = sorted(client.scan_iter(match=probe.redis_key_pattern, count=1000))
        keys = {key.decode(errors="replace"): read_key(client, key) for key in found}
    except redis.RedisError as error:
        return result | {"error": str(error), "summary": f"unavailable: {error}"}
    keys = dict(list(keys.items())[:PROBE_KEY_LIMIT])
    result |= {"keys": keys, "summary": _summary(probe, keys, task_id)}
    if probe.kind == "lock":
        result["held"] = bool(keys)
    if probe.kind == "counter":
        result["total"] = sum(v for v in keys.values() if isinstance(v, int))
    return result


def sqlite_path(url: str, cwd: Path) -> Path:
    path = Path(url.removeprefix("sqlite:///"))
    return path if path.is_absolute() else cwd / path


def read_sql_probe(probe: SqlProbe, cwd: Path) -> dict[str, Any]:
    """Rows of the query, opened read-only so a probe can never change what it observes."""
    path = sqlite_path(probe.url, cwd)
    result: dict[str, Any] = {"name": probe.name or probe.sql, "kind": "sql", "source": probe.url}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            cursor = db.execute(probe.sql)
            columns = [c[0] for c in cursor.description or []]
            rows = [list(row) for row in cursor.fetchmany(SQL_ROW_LIMIT)]
    except sqlite3.Error as error:
        return result | {"error": str(error), "summary": f"unavailable: {error}"}
    shown = "; ".join(
        ", ".join(f"{c}={v}" for c, v in zip(columns, row, strict=False)) for row in rows
    )
    return result | {"columns": columns, "rows": rows, "summary": shown or "no rows"}


def read_probes(
    probes: list[RedisProbe | SqlProbe], store: redis.Redis | None, task_id: str | None, cwd: Path
) -> list[dict[str, Any]]:
    return [
        read_sql_probe(p, cwd) if isinstance(p, SqlProbe) else read_redis_probe(p, store, task_id)
        for p in probes
    ]


def snapshot_probes(spec: ReproSpec, backend: Placement, cwd: Path) -> list[dict[str, Any]]:
    """Read every probe against this backend's store; never raises (it runs inside close())."""
    from celery_chaos.core import history as h

    store = backend.ledger.client if backend.ledger is not None else None
    try:
        events = backend.ledger.read_all() if backend.ledger is not None else []
        task_id = next((e["task_id"] for e in events if e["type"] == h.DISPATCH), None)
        return read_probes(spec.probes, store, task_id, cwd)
    except Exception as error:  # a probe must not turn a finished run into a crash
        return [{"name": "probes", "error": f"{type(error).__name__}: {error}"}]
