"""The project's Celery app, as Celery's Django guide writes it."""

from __future__ import annotations

import os

from celery import Celery, shared_task
from celery_chaos import checkpoint

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.django_app.settings")

app = Celery("django_app")
app.config_from_object("django.conf:settings", namespace="CELERY")


@shared_task(name="django_app.add")
def add(x: int, y: int) -> int:
    """Completes at once: its result goes to django-celery-results' table."""
    return x + y


@shared_task(name="django_app.slow_add")
def slow_add(x: int, y: int) -> int:
    """A checkpoint a fault can land on, then the sum."""
    checkpoint("halfway")
    return x + y
