"""Version 2 of the sample app, for rolling-deploy scenarios: ``sample_tasks.tasks.work`` now
takes ``duration`` where version 1 took ``seconds`` (a required keyword renamed, the kind of
signature change "drain the queues first" warns about). A message sent for version 1 and run
by a version 2 worker raises ``TypeError`` before the task's first line."""

from __future__ import annotations

import os
import time

from celery import Celery
from celery_chaos import checkpoint

app = Celery("sample_tasks", broker=os.environ.get("CHAOS_BROKER_URL", "redis://localhost:6379/0"))
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(name="sample_tasks.tasks.work")
def work(duration: float, steps: int = 5) -> float:
    """Version 2 of ``work``: the same steps, its length now called ``duration``."""
    for step in range(steps):
        checkpoint(f"step-{step}")
        time.sleep(duration / steps)
    checkpoint("done")
    return duration
