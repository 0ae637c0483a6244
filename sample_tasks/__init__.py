"""An instrumented Celery app whose tasks look like real work (see tasks.py)."""
