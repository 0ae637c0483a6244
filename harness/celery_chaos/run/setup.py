"""A scenario's ``setup`` steps: after its services and broker are up, before any worker starts.

``sql`` runs with ``psql`` against ``services.postgres``; ``run`` runs in a shell as the workers
would (their environment with the services' URLs, their working directory; on docker a one-off
container of the worker image on the run's network). A step that fails stops the run as not
runnable, with the step and the last lines of its output: the scenario could not be set up, so
nothing it would prove is proven.
"""

from __future__ import annotations

import time
from typing import Any

from celery_chaos.placements import Placement, Unsupported
from celery_chaos.services import postgres
from celery_chaos.services.readers import ReadError

TAIL_LINES = 12


def run_steps(backend: Placement, steps: list[Any]) -> None:
    """Run every step in order; raise :class:`Unsupported` at the first that fails."""
    for index, step in enumerate(steps):
        began = time.monotonic()
        if step.sql is not None:
            _sql(backend, index, step.sql)
            what = "sql"
        else:
            _run(backend, index, step.run, step.timeout)
            what = f"run {step.run!r}"
        backend.log(f"   setup[{index}] {what}: ok ({time.monotonic() - began:.2f}s)")


def _sql(backend: Placement, index: int, sql: str) -> None:
    try:
        url = backend.service_url("postgres")
        postgres.psql(url, sql)
    except (postgres.PostgresError, ReadError) as error:
        raise Unsupported(f"setup[{index}].sql failed: {error}") from None


def _run(backend: Placement, index: int, command: str, timeout: float) -> None:
    result = backend.run_setup_command(command, timeout)
    if result.exitcode == 0:
        return
    how = f"timed out after {timeout:g}s" if result.exitcode is None else f"exit {result.exitcode}"
    raise Unsupported(
        f"setup[{index}].run {command!r} failed ({how}): {postgres.tail(result.output, TAIL_LINES)}"
    )
