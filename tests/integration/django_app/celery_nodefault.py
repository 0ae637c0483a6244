"""The same Django project's Celery app without ``os.environ.setdefault("DJANGO_SETTINGS_MODULE",
...)``: only ``--settings`` or the variable already in the environment can configure it (the
commands' tests, tests/integration/test_django_commands.py). Its tasks are ``@shared_task``s,
registered with whichever app is current, as in a Django project's tasks.py."""

from __future__ import annotations

from celery import Celery, shared_task
from celery_chaos import checkpoint

app = Celery("django_nodefault")
app.config_from_object("django.conf:settings", namespace="CELERY")


@shared_task(name="django_nodefault.slow_add")
def slow_add(x: int, y: int) -> int:
    """A checkpoint a fault can land on, then the sum."""
    checkpoint("halfway")
    return x + y


@shared_task(name="django_nodefault.find_mark")
def find_mark(name: str) -> int:
    """Reads ``marks`` through Django's default database, as the worker's settings name it;
    raises when the row the test wrote is not visible here (pytest-django's ``db``)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM marks WHERE name = %s", [name])
        (count,) = cursor.fetchone()
    if not count:
        raise LookupError(f"no mark {name!r} in {connection.settings_dict['NAME']}")
    return count
