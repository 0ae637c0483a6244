"""The sample app with one worker step whose ``stop`` never returns (test_hung_worker.py): after
Celery's "Unrecoverable error" such a worker begins its shutdown and never ends it, as a worker
blocked in py-amqp's ``Channel.close`` after PRECONDITION_FAILED does (docs/explanation/
checker.md). Every task of the sample app is registered, so built-in workloads run unchanged."""

from __future__ import annotations

import threading

from celery import bootsteps
from celery_chaos.sample_tasks import tasks  # noqa: F401 - registers the sample tasks
from celery_chaos.sample_tasks.app import app


class NeverStops(bootsteps.StartStopStep):
    """Blocks the worker's shutdown for good (the harness SIGKILLs it at the run's end)."""

    def stop(self, worker: object) -> None:
        threading.Event().wait()


app.steps["worker"].add(NeverStops)
