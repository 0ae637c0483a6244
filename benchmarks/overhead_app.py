"""The app benchmarks/agent_overhead.py runs: a no-op, a 5 ms and a 10 ms task, a clock mark.

``BENCH_AGENT=1`` instruments it with the celery-chaos agent (one line, as users do); otherwise it
is a plain Celery app. With the agent, two extra signal receivers, connected just before and just
after the agent's, time the agent's own ``task_prerun`` and ``task_postrun`` handlers inside the
pool process (receivers run in the order they were connected).
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery, signals

app = Celery("overhead_app", broker=os.environ.get("BENCH_BROKER_URL", "redis://localhost:6379/0"))
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
_marks = redis.Redis.from_url(app.conf.broker_url)
_agent_time = {"started": 0.0, "total": 0.0, "calls": 0}


def _before(**_: object) -> None:
    _agent_time["started"] = time.perf_counter()


def _after(**_: object) -> None:
    _agent_time["total"] += time.perf_counter() - _agent_time["started"]
    _agent_time["calls"] += 1


if os.environ.get("BENCH_AGENT") == "1":
    from celery_chaos import install

    for signal in (signals.task_prerun, signals.task_postrun):
        signal.connect(_before, weak=False)
    install(app)
    for signal in (signals.task_prerun, signals.task_postrun):
        signal.connect(_after, weak=False)


# The floor of any agent design (BENCH_FLOOR): per attempt the pool process writes a 200-byte
# event twice, at task_prerun and task_postrun, and does nothing else. "socket": a pre-encoded
# RPUSH on a CLIENT REPLY OFF connection to the ledger (what the fire-and-forget agent sends, no
# agent code around it); "file": an O_APPEND write() to a file of its own, which wakes no other
# process (a write() that returned survives a SIGKILL as well).
_FLOOR_EVENT = b"x" * 200
_floor: dict[str, object] = {}


def _floor_writer() -> object:
    if _floor.get("pid") != os.getpid():  # a pool process: its own connection or file
        if os.environ["BENCH_FLOOR"] == "socket":
            from celery_chaos.agent.ledger_wire import WireLedger, command

            link = WireLedger(os.environ["BENCH_LEDGER_URL"])
            payload = command("RPUSH", "bench:floor", _FLOOR_EVENT)
            _floor["write"] = lambda: link.sock.sendall(payload)
        else:
            path = os.path.join(os.environ["BENCH_SPOOL_DIR"], f"floor-{os.getpid()}.log")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            _floor["write"] = lambda: os.write(fd, _FLOOR_EVENT + b"\n")
        _floor["pid"] = os.getpid()
    return _floor["write"]


def _floor_event(**_: object) -> None:
    _floor_writer()()


if os.environ.get("BENCH_FLOOR"):
    for signal in (signals.task_prerun, signals.task_postrun):
        signal.connect(_floor_event, weak=False)


@app.task(name="overhead_app.noop", ignore_result=True)
def noop() -> None:
    """Nothing: the throughput is all Celery (and the agent, when installed)."""


@app.task(name="overhead_app.sleep_10ms", ignore_result=True)
def sleep_10ms() -> None:
    time.sleep(0.01)


@app.task(name="overhead_app.sleep_5ms", ignore_result=True)
def sleep_5ms() -> None:
    """Issue 22's yardstick: the agent may cost at most 1 % of a 5 ms task."""
    time.sleep(0.005)


@app.task(name="overhead_app.mark", ignore_result=True)
def mark(name: str) -> None:
    """Write the worker's clock, so queue-filling and worker start-up are not timed; the end mark
    also writes how long the agent's handlers took per task in this pool process."""
    _marks.set(f"bench:{name}", repr(time.time()))
    if name == "end" and _agent_time["calls"]:
        per_task = _agent_time["total"] / _agent_time["calls"] * 2 * 1e6
        _marks.set("bench:agent_us", repr(per_task))
