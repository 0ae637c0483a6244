"""The sample Celery app. The one line that instruments it is ``install(app)``."""

from __future__ import annotations

import os

from celery import Celery
from celery_chaos import install

app = Celery(
    "sample_tasks",
    broker=os.environ.get("CHAOS_BROKER_URL", "redis://localhost:6379/0"),
    include=["celery_chaos.sample_tasks.tasks"],
)
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
install(app)
