"""A plain Celery app that ingests a document the way many real apps do.

``ingest`` takes the document's lock (its own Redis key, ``SET NX`` with no expiry: nothing
else ever frees it), writes the parts one by one, writes the final content last and releases the
lock. The settings come from ``celeryconfig_<INGEST_CONFIG>`` (``unsafe``, the default, or
``fixed``). ``celery_chaos.checkpoint`` marks the steps so a fault can land exactly between two
of them; outside the harness it does nothing.
"""

from __future__ import annotations

import os
import time
from functools import cache

import redis
from celery import Celery, Task
from celery_chaos.agent import instrument as agent

CONFIGS = ("unsafe", "fixed")
CONFIG = os.environ.get("INGEST_CONFIG", "unsafe")
if CONFIG not in CONFIGS:
    raise ValueError(f"INGEST_CONFIG={CONFIG!r}: expected one of {', '.join(CONFIGS)}")

app = Celery("ingest_app")
app.config_from_object(f"{__package__}.celeryconfig_{CONFIG}")


class DocumentLocked(RuntimeError):
    """Another ingest holds the document's lock."""


@cache
def _own_store() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/1"))


def store() -> redis.Redis:
    """The app's database: the harness store when run by celery-chaos, else ``REDIS_URL``."""
    return agent.store() or _own_store()


def acquire(db: redis.Redis, key: str, owner: str) -> bool:
    """Take the lock; with ``ingest_reclaim_own_lock`` a rerun of the same task takes it back."""
    if db.set(key, owner, nx=True):
        return True
    return bool(app.conf.get("ingest_reclaim_own_lock")) and db.get(key) == owner.encode()


@app.task(name="ingest_app.ingest", bind=True)
def ingest(self: Task, doc_id: int, parts: int = 5, part_seconds: float = 0.1) -> str:
    """Lock the document, write its parts step by step, the final content last, unlock."""
    db, owner = store(), self.request.id
    lock_key, doc_key = f"lock:doc:{doc_id}", f"doc:{doc_id}"
    if not acquire(db, lock_key, owner):
        raise DocumentLocked(f"document {doc_id} is locked by {db.get(lock_key)!r}")
    db.hset(doc_key, mapping={"status": "ingesting", "task": owner})
    for part in range(parts):
        agent.checkpoint(f"part-{part}")
        time.sleep(part_seconds)
        db.hset(doc_key, f"part:{part}", f"text of part {part}")  # overwrite: safe to rerun
    agent.checkpoint("final")
    db.hset(doc_key, mapping={"status": "done", "content": f"document {doc_id}, {parts} parts"})
    db.incr("stats:ingested")
    db.delete(lock_key)
    return f"doc:{doc_id}"
