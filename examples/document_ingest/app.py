"""The incident celery-chaos exists for, as a plain Celery app on PostgreSQL.

``ingest(doc_id)`` is written the way many real apps write it: it takes the document's lock
(``backend_lock = true``, committed at once so the UI shows "processing"), parses in stages
(each stage's progress committed), writes the content LAST and clears the lock at the very end.
Kill the process between the lock and the end and the row stays ``backend_lock = true`` with no
content; a second run of the same task finds the lock taken and gives up (``DocumentLocked``).

``ingest_idempotent(doc_id)`` runs the same statements in ONE transaction, under PostgreSQL's
own row lock (``SELECT ... FOR UPDATE``): a process that dies mid-parse loses its connection,
PostgreSQL rolls its transaction back (its ``backend_lock = true`` too) and drops the row lock, so
a rerun starts from a clean row; a rerun after success sees the content and returns. It can be
run any number of times.

``celery_chaos.checkpoint(stage)`` marks each stage so a fault lands exactly there; outside
celery-chaos it does nothing. The database is ``DATABASE_URL`` (what ``services: {postgres: {}}``
gives the workers); the broker is the harness's own (``BROKER_URL`` when run by hand).
"""

from __future__ import annotations

import os
import time

import psycopg
from celery import Celery, Task
from celery_chaos import checkpoint

STAGES = ("extract", "ocr", "index")

app = Celery("document_ingest")
app.conf.broker_url = os.environ.get("BROKER_URL", "redis://localhost:6379/0")
app.conf.broker_connection_retry_on_startup = True


class DocumentLocked(RuntimeError):
    """Another ingest holds the document's ``backend_lock`` (or a dead one left it set)."""


class DocumentMissing(LookupError):
    """No row for this document id."""


def connect() -> psycopg.Connection:
    """A connection to the app's database (``DATABASE_URL``); each statement commits on its own
    unless inside ``db.transaction()``."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set (services: {postgres: {}} sets it)")
    return psycopg.connect(url, autocommit=True)


def parse_stage(doc_id: str, stage: str, seconds: float) -> str:
    """One stage of the parse: the slow, CPU-bound part of a real ingest."""
    time.sleep(seconds)
    return f"{stage} of {doc_id}"


def parse_and_store(db: psycopg.Connection, doc_id: str, stage_seconds: float) -> None:
    """Parse stage by stage (a checkpoint before each, so a fault lands exactly there), record
    each stage, then write the content last and clear the lock: what both tasks share."""
    parts = []
    for stage in STAGES:
        checkpoint(stage)
        parts.append(parse_stage(doc_id, stage, stage_seconds))
        db.execute("UPDATE documents SET stage = %s WHERE id = %s", (stage, doc_id))
    checkpoint("store")
    db.execute("UPDATE documents SET content = %s WHERE id = %s", ("; ".join(parts), doc_id))
    db.execute(
        "UPDATE documents SET backend_lock = false, locked_by = NULL, stage = 'done' WHERE id = %s",
        (doc_id,),
    )


@app.task(name="document_ingest.ingest", bind=True)
def ingest(self: Task, doc_id: str, stage_seconds: float = 0.3) -> str:
    """Lock the row (committed), parse stage by stage, write the content last, unlock."""
    with connect() as db:  # every statement commits on its own
        taken = db.execute(
            "UPDATE documents SET backend_lock = true, locked_by = %s"
            " WHERE id = %s AND NOT backend_lock RETURNING id",
            (self.request.id, doc_id),
        ).fetchone()
        if taken is None:
            owner = db.execute("SELECT locked_by FROM documents WHERE id = %s", (doc_id,))
            row = owner.fetchone()
            if row is None:
                raise DocumentMissing(doc_id)
            raise DocumentLocked(f"document {doc_id} is locked by {row[0]}")
        parse_and_store(db, doc_id, stage_seconds)
    return doc_id


@app.task(name="document_ingest.ingest_idempotent", bind=True)
def ingest_idempotent(self: Task, doc_id: str, stage_seconds: float = 0.3) -> str:
    """The same statements as ``ingest``, in one transaction under a row lock: safe to run
    again, at any point. ``backend_lock`` is set and cleared inside the transaction, so other
    code reading it sees the same column; it is committed only together with the content."""
    with connect() as db, db.transaction():
        # Blocks while another attempt holds the row; a dead attempt's lock went with its
        # connection (PostgreSQL rolled it back), so a redelivery never waits on a corpse.
        row = db.execute(
            "SELECT content FROM documents WHERE id = %s FOR UPDATE", (doc_id,)
        ).fetchone()
        if row is None:
            raise DocumentMissing(doc_id)
        if row[0] is not None:
            return doc_id  # already parsed by an earlier attempt: nothing to redo
        db.execute(
            "UPDATE documents SET backend_lock = true, locked_by = %s WHERE id = %s",
            (self.request.id, doc_id),
        )
        parse_and_store(db, doc_id, stage_seconds)
    return doc_id
