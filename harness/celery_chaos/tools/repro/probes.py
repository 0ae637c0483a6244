"""The repro file's invariants as the repro reports them: what the task left behind, judged.

Most invariants are the scenario's own: the run reads them with the workers frozen and the
checker judges them (``invariant_violations``). A ``redis`` invariant without ``url`` in a repro
file without ``services.redis`` reads the *harness store* (what ``celery_chaos.store()`` returns
inside tasks, the ledger Redis): the run has no service to read it from, so the repro reads it
here, after the run and before teardown, and judges it with the same pure judge
(:func:`celery_chaos.core.invariants.judge`). Old ``probes`` arrive here already converted
(:func:`celery_chaos.tools.repro.spec.probe_invariant`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis

from celery_chaos.core.app_state import InvariantValue
from celery_chaos.core.conclusion import ScenarioResult
from celery_chaos.core.invariants import expect_text, judge, number_text
from celery_chaos.core.scenario_data import Invariant
from celery_chaos.placements import Placement
from celery_chaos.tools.repro.spec import ReproSpec, reads_store

SHOWN_KEYS = 5  # keys (and values) shown beside a store invariant's count
KEY_LIMIT = 100  # keys (and values) kept in result.json
HARNESS_STORE = "harness store"


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
        return [_decode(v) for v in client.lrange(key, 0, 99)]
    if kind == "set":
        return sorted(str(_decode(v)) for v in client.smembers(key))
    if kind == "zset":
        return [[_decode(m), s] for m, s in client.zrange(key, 0, 99, True)]
    return None


def summary(judged: dict[str, Any], shown: str = "") -> str:
    """``1 (expected 0): lock:doc:42 = <id> (the repro task)``: a console line's tail."""
    head = "unreadable" if judged.get("error") else number_text(judged["value"])
    text = f"{head} (expected {expect_text(judged['expect'])}"
    text += ")" if judged["held"] else ", BROKEN)"
    if judged.get("error"):
        return f"{text}: {judged['error']}"
    return f"{text}: {shown}" if shown else text


def _shown(keys: dict[str, Any], task_id: str | None) -> str:
    parts = []
    for key, value in list(keys.items())[:SHOWN_KEYS]:
        mark = " (the repro task)" if task_id is not None and value == task_id else ""
        parts.append(f"{key} = {json.dumps(value, default=str)}{mark}")
    more = f"; and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return "; ".join(parts) + more


def read_store_invariant(
    invariant: Invariant, store: redis.Redis | None, run_id: str, task_id: str | None
) -> dict[str, Any]:
    """A ``redis`` invariant counted in the harness store, judged, with the keys it found and
    their values (the first ``KEY_LIMIT``): what a lock or a half-written record holds."""
    pattern = (invariant.redis or "").replace("{run_id}", run_id)
    value, error, keys = None, None, {}
    if store is None:
        error = "the harness store was not started"
    else:
        try:
            found = sorted(store.scan_iter(match=pattern, count=1000))
            value = float(len(found))
            keys = {k.decode(errors="replace"): read_key(store, k) for k in found[:KEY_LIMIT]}
        except redis.RedisError as problem:
            error = str(problem)
    measured = InvariantValue(invariant.name, "redis", pattern, _expected(invariant), value, error)
    judged = judge(measured)
    shown = _shown(keys, task_id)
    return judged | {"source": HARNESS_STORE, "keys": keys, "summary": summary(judged, shown)}


def _expected(invariant: Invariant) -> Any:
    dump = getattr(invariant.expect, "model_dump", None)
    return dump(exclude_none=True) if dump is not None else invariant.expect


def snapshot_probes(spec: ReproSpec, backend: Placement) -> list[dict[str, Any]]:
    """Every harness-store invariant, judged; never raises (it runs inside close())."""
    from celery_chaos.core import history as h

    store = backend.ledger.client if backend.ledger is not None else None
    try:
        events = backend.ledger.read_all() if backend.ledger is not None else []
        task_id = next((e["task_id"] for e in events if e["type"] == h.DISPATCH), None)
        return [
            read_store_invariant(invariant, store, backend.run_id, task_id)
            for invariant in spec.invariants
            if reads_store(spec, invariant)
        ]
    except Exception as error:  # a reading must not turn a finished run into a crash
        return [{"name": "invariants", "held": False, "error": f"{type(error).__name__}: {error}"}]


def judged_by_run(result: ScenarioResult) -> list[dict[str, Any]]:
    """The invariants the run read and the checker judged, each with its console summary."""
    judged = result.verdicts.invariants if result.verdicts is not None else []
    return [j | {"summary": summary(j)} for j in judged]


def broken(invariants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The invariants that did not hold (a value outside ``expect``, or none read)."""
    return [i for i in invariants if i.get("held") is False]
