"""Celery's defaults, as most apps run them: the message is acknowledged before the task runs.

``celery-chaos audit`` reports this as an error (defaults-child-kill); ``celery-chaos repro``
shows a killed ingest lost, its document half-written and its lock held forever.
"""

import os

broker_url = os.environ.get("BROKER_URL", "redis://localhost:6379/0")
broker_connection_retry_on_startup = True

# Not a Celery setting: the app's own switch, read by the task (see app.py).
ingest_reclaim_own_lock = False
