#!/usr/bin/env python
"""What the in-worker agent costs: task throughput of one prefork worker with and without it.

Two tasks, a no-op and a 10 ms sleep, N of each (``--tasks``, default 5,000). For every
(task, variant) the queue is filled first (a ``mark('start')`` task, N tasks, a
``mark('end')`` task), then one ``celery worker`` (prefork, ``-c --concurrency``) drains it; the
two marks record the worker's clock in Redis, so the figure is N / (end - start): worker start-up
and dispatching are not counted. Variants:

- *without agent*: the app as a user runs it in production, no ``install(app)``;
- *with agent*: ``install(app)`` and ``CHAOS_LEDGER_URL`` set, so every attempt writes its
  ``attempt_start`` / ``attempt_end`` events (and the attempt counter) to a ledger Redis, as
  under the harness.

Same broker (one ``redis-server`` this script starts), same settings, same worker command;
the variants alternate ``--repeat`` times and the median counts. Target: the agent costs at most
5 % of the throughput.

It also times the agent's own signal handlers in this process (``task_prerun`` +
``task_postrun`` for one attempt, against the ledger Redis) and counts the Redis round trips
they make: the per-task cost the throughput difference should match.

Usage: python benchmarks/agent_overhead.py [--tasks 5000] [--repeat 3] [--concurrency 2]
                                           [--handler-calls 2000] [--smoke]
``--smoke``: 50 tasks, 1 repetition, 50 handler calls: proves it runs, in seconds. A missed target
prints MISS and still exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from celery import Celery, Task, signals  # noqa: E402
from celery_chaos import install  # noqa: E402
from celery_chaos.agent import instrument  # noqa: E402
from celery_chaos.core import history as h  # noqa: E402
from celery_chaos.placements.local.redis_server import RedisServer  # noqa: E402

TARGET_PERCENT = 5.0
TASKS = {"no-op": "overhead_app.noop", "10 ms task": "overhead_app.sleep_10ms"}
DRAIN_DEADLINE_PER_TASK = 0.2  # seconds; generous, a stuck worker still ends the run
SMOKE = {"tasks": 50, "handler_calls": 50}  # --smoke: every code path once, in seconds
SMOKE_NOTE = (
    "smoke run (--smoke): tiny N, so the figures prove the benchmark runs, not the agent's cost"
)


def _worker(broker: str, ledger: str | None, concurrency: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, BENCH_BROKER_URL=broker, PYTHONPATH=str(HERE))
    env.pop("CHAOS_LEDGER_URL", None)
    env["BENCH_AGENT"] = "1" if ledger else "0"
    if ledger:
        env["CHAOS_LEDGER_URL"] = ledger
    command = [sys.executable, "-m", "celery", "-A", "overhead_app", "worker", "-P", "prefork",
               "-c", str(concurrency), "-l", "warning", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """Stop the worker's whole process group (its pool processes too)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def measure(task: str, with_agent: bool, args: argparse.Namespace, env: dict) -> float:
    """Tasks per second of one worker draining ``args.tasks`` copies of ``task``."""
    broker, ledger, client = env["broker"], env["ledger"], env["client"]
    broker.client().flushdb()
    ledger.client().flushdb()
    client.send_task("overhead_app.mark", args=["start"])
    for _ in range(args.tasks):
        client.send_task(task)
    client.send_task("overhead_app.mark", args=["end"])
    worker = _worker(broker.url, ledger.url if with_agent else None, args.concurrency, env["log"])
    try:
        marks = broker.client()
        deadline = time.monotonic() + 30 + args.tasks * DRAIN_DEADLINE_PER_TASK
        while marks.get("bench:end") is None:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"worker did not drain the queue; see {env['log']}")
            time.sleep(0.05)
        start, end = float(marks.get("bench:start")), float(marks.get("bench:end"))
        in_worker = marks.get("bench:agent_us")
    finally:
        _stop(worker)
    if with_agent:
        recorded = ledger.client().llen(h.HISTORY_KEY)
        assert recorded >= 2 * args.tasks, f"the agent recorded only {recorded} events"
        if in_worker is not None:  # None: the end mark ran in a pool process that ran no task
            env["in_worker_us"].append(float(in_worker))
    return args.tasks / (end - start)


def _timed_task() -> Task:
    """A real task of a real app, with a request as a worker would push it: the agent's handlers
    read whatever a task has (``app``, ``name``, ``request``), so the benchmark never fakes one."""
    app = Celery("bench-handlers", set_as_current=False)

    @app.task(name="overhead_app.noop", ignore_result=True, shared=False)
    def noop() -> None:
        """What the pool process would run (the timing loop never calls it)."""

    task = app.tasks[noop.name]
    delivery = {"redelivered": False, "exchange": "", "routing_key": "celery"}
    task.push_request(hostname="w0@bench", delivery_info=delivery, retries=0)
    install(app)
    return task


def handler_cost(ledger: RedisServer, calls: int = 2000) -> tuple[float, float, float]:
    """µs per attempt of the agent's prerun + postrun, its Redis round trips, µs per PING.

    The handlers run as Celery runs them, through ``task_prerun``/``task_postrun.send`` (the
    agent's receivers are whatever ``install(app)`` connected), not by their private names."""
    os.environ["CHAOS_LEDGER_URL"] = ledger.url
    task = _timed_task()
    agent_client = instrument.ledger().client
    sent = [0]
    execute = agent_client.execute_command

    def counted(*args, **options):
        sent[0] += 1
        return execute(*args, **options)

    agent_client.execute_command = counted

    def attempt(number: int) -> None:
        task_id = f"handler-{number}"
        signals.task_prerun.send(sender=task, task_id=task_id, task=task, args=(), kwargs={})
        signals.task_postrun.send(sender=task, task_id=task_id, task=task, args=(), kwargs={},
                                  retval=None, state="SUCCESS")  # fmt: skip

    attempt(-1)  # loads the agent's Lua script once
    sent[0] = 0
    started = time.perf_counter()
    for number in range(calls):
        attempt(number)
    per_attempt = (time.perf_counter() - started) / calls * 1e6
    round_trips = sent[0] / calls
    recorded = ledger.client().llen(h.HISTORY_KEY)
    assert recorded >= 2 * calls, f"the agent's handlers recorded only {recorded} events"
    client = ledger.client()
    started = time.perf_counter()
    for _ in range(calls):
        client.ping()
    ping = (time.perf_counter() - started) / calls * 1e6
    del os.environ["CHAOS_LEDGER_URL"]
    return per_attempt, round_trips, ping


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--handler-calls", type=int, default=2000, help="in-process timing loop")
    parser.add_argument(
        "--smoke", action="store_true", help=f"tiny N ({SMOKE}): proves it runs, seconds"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.tasks, args.repeat, args.handler_calls = SMOKE["tasks"], 1, SMOKE["handler_calls"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agent-overhead-") as folder:
        broker, ledger = RedisServer("broker", Path(folder)), RedisServer("ledger", Path(folder))
        broker.start()
        ledger.start()
        client = Celery("bench", broker=broker.url)
        env = {"broker": broker, "ledger": ledger, "client": client,
               "log": Path(folder) / "worker.log", "in_worker_us": []}  # fmt: skip
        try:
            rows = [_row(label, task, args, env) for label, task in TASKS.items()]
            ledger.client().flushdb()
            handlers = handler_cost(ledger, args.handler_calls)
        finally:
            client.close()
            broker.stop()
            ledger.stop()
    _print(rows, args)
    if env["in_worker_us"]:
        in_worker = statistics.median(env["in_worker_us"])
        print(f"agent handlers (prerun + postrun) inside the pool process: {in_worker:.0f} µs"
              " per task")  # fmt: skip
    per_attempt, round_trips, ping = handlers
    print(
        f"agent handlers (prerun + postrun) in-process: {per_attempt:.0f} µs per attempt,"
        f" {round_trips:.1f} Redis round trips (PING here: {ping:.0f} µs)"
    )
    if args.smoke:
        print(SMOKE_NOTE)
    return 0


def _row(label: str, task: str, args: argparse.Namespace, env: dict) -> tuple:
    without, with_agent = [], []
    for _ in range(args.repeat):
        without.append(measure(task, False, args, env))
        with_agent.append(measure(task, True, args, env))
    return label, without, with_agent


def _print(rows: list[tuple], args: argparse.Namespace) -> None:
    print(f"{args.tasks} tasks, 1 prefork worker -c {args.concurrency}, median of {args.repeat}")
    print(f"{'task':<12}{'without agent':>16}{'with agent':>16}{'difference':>12}  target")
    for label, without, with_agent in rows:
        a, b = statistics.median(without), statistics.median(with_agent)
        slower = (a - b) / a * 100
        verdict = "PASS" if slower <= TARGET_PERCENT else "MISS"
        print(f"{label:<12}{a:>12.0f} t/s{b:>12.0f} t/s{-slower:>+11.1f}%  "
              f"<= {TARGET_PERCENT:.0f}% slower {verdict}")  # fmt: skip
        runs = ", ".join(f"{x:.0f}/{y:.0f}" for x, y in zip(without, with_agent, strict=True))
        print(f"{'':<12}runs (without/with): {runs}")


if __name__ == "__main__":
    sys.exit(main())
