"""The app benchmarks/agent_overhead.py runs: a no-op, a 10 ms task and a clock mark.

``BENCH_AGENT=1`` instruments it with the celery-chaos agent (one line, as users do); otherwise it
is a plain Celery app.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

app = Celery("overhead_app", broker=os.environ.get("BENCH_BROKER_URL", "redis://localhost:6379/0"))
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
if os.environ.get("BENCH_AGENT") == "1":
    from celery_chaos import install

    install(app)

_marks = redis.Redis.from_url(app.conf.broker_url)


@app.task(name="overhead_app.noop", ignore_result=True)
def noop() -> None:
    """Nothing: the throughput is all Celery (and the agent, when installed)."""


@app.task(name="overhead_app.sleep_10ms", ignore_result=True)
def sleep_10ms() -> None:
    time.sleep(0.01)


@app.task(name="overhead_app.mark", ignore_result=True)
def mark(name: str) -> None:
    """Write the worker's clock, so queue-filling and worker start-up are not timed."""
    _marks.set(f"bench:{name}", repr(time.time()))
