"""A tiny real Celery app whose result backend is its own (tests/integration/
test_result_backends.py): ``RESULT_APP_BACKEND`` (default: a Redis on a closed port, as an app
whose backend does not exist where it runs)."""

from __future__ import annotations

import os
import time

from celery import Celery
from celery_chaos import checkpoint

app = Celery(
    "result_app",
    broker=os.environ.get("CHAOS_BROKER_URL", "redis://localhost:6379/0"),
    backend=os.environ.get("RESULT_APP_BACKEND", "redis://127.0.0.1:1/0"),
)
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(name="result_app.add")
def add(x: int, y: int) -> int:
    """Completes at once: only storing its result can go wrong."""
    return x + y


@app.task(name="result_app.fire_and_forget", ignore_result=True)
def fire_and_forget() -> None:
    """Ignores its result: nothing to store, nothing to find."""


@app.task(name="result_app.slow_add")
def slow_add(x: int, y: int) -> int:
    """A checkpoint a repro's fault can land on, then the sum."""
    checkpoint("halfway")
    time.sleep(0.2)
    return x + y
