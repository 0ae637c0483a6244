"""The project's Celery app, as Celery's Django guide writes it."""

from __future__ import annotations

import os

from celery import Celery, shared_task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.django_app.settings")

app = Celery("django_app")
app.config_from_object("django.conf:settings", namespace="CELERY")


@shared_task(name="django_app.add")
def add(x: int, y: int) -> int:
    """Completes at once: its result goes to django-celery-results' table."""
    return x + y
