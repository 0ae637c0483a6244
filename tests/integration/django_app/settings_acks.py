"""A second settings module of the project whose Celery settings matter when a worker dies:
``CELERY_TASK_ACKS_LATE`` and ``CELERY_TASK_REJECT_ON_WORKER_LOST`` (read through
``config_from_object(..., namespace="CELERY")``) make a task whose pool process is SIGKILLed
come back instead of being lost, so a run shows whether this module reached the workers."""

from __future__ import annotations

from tests.integration.django_app.settings import *  # noqa: F403

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
