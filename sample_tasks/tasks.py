"""Tasks that look like real work, instrumented with the agent API.

Every task takes its timing as arguments so scenarios can place faults precisely. They wait with
``time.sleep`` and talk to Redis, both of which gevent/eventlet patch, so they cooperate with green
pools; ``spin`` deliberately does not.
"""

from __future__ import annotations

import os
import signal
import time

from celery_chaos import apply_once, checkpoint, lock, side_effect, store
from celery_chaos.sample_tasks.app import app


@app.task(name="sample_tasks.tasks.ingest_document")
def ingest_document(doc_id: str, steps: int = 10, step_seconds: float = 0.2) -> str:
    """Multi-step ingest: take the document's lock, parse in steps, write the final content last.

    Killed mid-way, it leaves the document half-written (``status=ingesting``) and, unless the
    task is redelivered, its lock held forever.
    """
    db = store()
    with lock(f"doc:{doc_id}"):
        if db is not None:
            db.hset(f"app:doc:{doc_id}", mapping={"status": "ingesting", "parts": 0})
        for step in range(steps):
            checkpoint(f"step-{step}")
            time.sleep(step_seconds)
            if db is not None:
                db.hincrby(f"app:doc:{doc_id}", "parts", 1)
        checkpoint("write-final")
        if db is not None:
            db.hset(f"app:doc:{doc_id}", mapping={"status": "done", "content": f"doc {doc_id}"})
    return doc_id


@app.task(name="sample_tasks.tasks.send_email")
def send_email(to: str, steps: int = 5, step_seconds: float = 0.2) -> str:
    """Non-idempotent side effect: every execution sends the email again."""
    for step in range(steps):
        checkpoint(f"render-{step}")
        time.sleep(step_seconds)
    side_effect(f"email:{to}")
    checkpoint("sent")
    return to


@app.task(name="sample_tasks.tasks.send_email_idempotent")
def send_email_idempotent(
    to: str, idempotency_key: str = "", steps: int = 5, step_seconds: float = 0.2
) -> str:
    """The same effect guarded by an idempotency key: a re-run attempts but does not re-send."""
    for step in range(steps):
        checkpoint(f"render-{step}")
        time.sleep(step_seconds)
    apply_once(idempotency_key or f"email:{to}")
    checkpoint("sent")
    return to


@app.task(name="sample_tasks.tasks.memory_hog")
def memory_hog(mb_per_step: int = 16, steps: int = 24, step_seconds: float = 0.05) -> int:
    """Grows its resident memory step by step until done (or until a memory limit kills it)."""
    held = []
    for step in range(steps):
        checkpoint(f"grow-{step}")
        held.append(b"\x01" * (mb_per_step * 1024 * 1024))  # written, so really resident
        time.sleep(step_seconds)
    checkpoint("done")
    return sum(len(chunk) for chunk in held) // (1024 * 1024)


@app.task(name="sample_tasks.tasks.poison")
def poison(delay: float = 0.1) -> None:
    """Kills its own process every time it runs, like a segfaulting C extension."""
    checkpoint("start")
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="sample_tasks.tasks.record_then_die")
def record_then_die(effects: int = 50) -> None:
    """Records ``effects`` side effects, then SIGKILLs its own process at once: every event it
    sent must still be in the history (the agent does not wait for the ledger's replies)."""
    for n in range(effects):
        side_effect(f"effect-{n}")
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="sample_tasks.tasks.work")
def work(seconds: float = 1.0, steps: int = 5) -> float:
    """Plain work in steps, for timing and queueing scenarios."""
    for step in range(steps):
        checkpoint(f"step-{step}")
        time.sleep(seconds / steps)
    checkpoint("done")
    return seconds


@app.task(name="sample_tasks.tasks.flaky", bind=True, max_retries=5)
def flaky(self, fail_times: int = 2, retry_delay: float = 0.1, seconds: float = 0.2) -> int:
    """A transient error: raises ``Retry`` (``self.retry()``) on its first ``fail_times`` runs,
    then succeeds. Retried, never interrupted, it is ``ok`` with the ``retried`` label."""
    checkpoint(f"try-{self.request.retries}")
    time.sleep(seconds)
    if self.request.retries < fail_times:
        raise self.retry(countdown=retry_delay)
    return self.request.retries


@app.task(name="sample_tasks.tasks.step")
def step(*previous: object, name: str = "step", seconds: float = 0.5, steps: int = 5) -> str:
    """One step of a workflow (chain member, group member or chord callback): takes whatever
    the step before passed (a chain's previous result, a chord header's list of results),
    works in checkpointed steps and returns its name, so a chain's results read like a path."""
    for n in range(steps):
        checkpoint(f"step-{n}")
        time.sleep(seconds / steps)
    side_effect(f"workflow-step:{name}")
    checkpoint("done")
    return name


class TransientError(ConnectionError):
    """What ``flaky_autoretry`` raises: a transient failure Celery retries by itself."""


@app.task(
    name="sample_tasks.tasks.flaky_autoretry",
    bind=True,
    autoretry_for=(TransientError,),
    default_retry_delay=5,
    max_retries=5,
)
def flaky_autoretry(self, fail_times: int = 1, seconds: float = 0.1) -> int:
    """``autoretry_for``: raises a transient error on its first ``fail_times`` runs and Celery
    retries it 5 seconds later (``default_retry_delay``), with no ``self.retry()`` in the body."""
    checkpoint(f"try-{self.request.retries}")
    time.sleep(seconds)
    if self.request.retries < fail_times:
        raise TransientError("upstream unavailable")
    return self.request.retries


@app.task(name="sample_tasks.tasks.spin")
def spin(seconds: float = 2.0) -> int:
    """CPU-bound work that never yields: on a gevent/eventlet pool it blocks the hub, so every
    other greenlet of the worker (tasks, broker heartbeats, acks) stalls until it returns, a
    real way such workers freeze. On prefork it only occupies its own pool process."""
    checkpoint("start")
    end, loops = time.monotonic() + seconds, 0
    while time.monotonic() < end:  # no sleep, no I/O: nothing for the hub to switch on
        loops += 1
    checkpoint("done")
    return loops


@app.task(name="sample_tasks.tasks.record_row", bind=True)
def record_row(self, table: str = "rows") -> str:
    """Insert this task's id into ``table`` of the run's PostgreSQL (``DATABASE_URL``): the
    app's own state, which the run's ``sql`` invariants read."""
    import psycopg  # only the tasks that use the run's database need the driver

    with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
        connection.execute(f"INSERT INTO {table} (task_id) VALUES (%s)", (self.request.id,))
    return self.request.id


@app.task(name="sample_tasks.tasks.write_file", bind=True)
def write_file(self, folder: str = "out") -> str:
    """Write ``<folder>/<task id>.txt`` relative to the worker's working directory (``path``
    invariants count such files; they must land in the run's folder)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{self.request.id}.txt")
    with open(path, "w") as out:
        out.write("done\n")
    return os.path.abspath(path)


@app.task(name="sample_tasks.tasks.hold_redis_key", bind=True)
def hold_redis_key(self, key: str = "lock:doc:1", seconds: float = 2.0) -> str:
    """Set ``key`` in the app's own Redis (``REDIS_URL``), keep it ``seconds``, delete it: a
    lock that exists only while the task runs (``during: true`` invariants see it)."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.set(key, self.request.id)
    checkpoint("locked")
    time.sleep(seconds)
    client.delete(key)
    return key
