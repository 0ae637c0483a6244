#!/usr/bin/env python
"""What the in-worker agent costs: task throughput of one prefork worker without the agent,
with its synchronous writes (every event waits for the ledger's reply, as before issue 22) and
with its fire-and-forget writes (``agent.ledger_wire``, what a run uses now).

Two tasks, a no-op and a 5 ms sleep, N of each (``--tasks``, default 5,000). For every
(task, variant) the queue is filled first (a ``mark('start')`` task, N tasks, a
``mark('end')`` task), then one ``celery worker`` (prefork, ``-c --concurrency``, default 1,
otherwise Celery's defaults: gossip, mingle and heartbeats on) drains it; the two marks record the
worker's clock in Redis, so the figure is N / (end - start): worker start-up and dispatching are
not counted. Variants, alternated ``--repeat`` times (the median counts):

- *no agent*: the app as a user runs it in production, no ``install(app)``;
- *agent sync*: ``install(app)``, ``CHAOS_LEDGER_URL`` set, ``CHAOS_AGENT_WRITES=sync``;
- *agent async*: the same with ``CHAOS_AGENT_WRITES=async`` and no armable checkpoint, as a run
  sets it for a scenario whose faults have no checkpoint trigger.

Goals (issue 22): the agent costs at most 5 % on the no-op and 1 % on the 5 ms task; each figure
is printed beside its goal and the figure issue 22 measured before (77 % / 26.3 %, synchronous).
After each agent run the benchmark waits for the worker's ledger connections to close
(``run.barrier``) and checks that every attempt was recorded.

It also times the agent's own signal handlers in this process (``task_prerun`` +
``task_postrun`` for one attempt, against the ledger Redis), for both write modes, and counts the
Redis round trips of the synchronous one.

Usage: python benchmarks/agent_overhead.py [--tasks 5000] [--repeat 3] [--concurrency 1]
                                           [--handler-calls 2000] [--smoke]
``--smoke``: 50 tasks, 1 repetition, 50 handler calls: proves it runs, in seconds. A missed goal
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
from celery_chaos.run.barrier import wait_agents_gone  # noqa: E402

TASKS = {"no-op": "overhead_app.noop", "5 ms task": "overhead_app.sleep_5ms"}
GOAL_PERCENT = {"no-op": 5.0, "5 ms task": 1.0}  # issue 22
EARLIER_PERCENT = {"no-op": 77.0, "5 ms task": 26.3}  # issue 22, synchronous agent, idle machine
VARIANTS = ("no agent", "agent sync", "agent async", "floor: socket", "floor: file")
# No agent code at all: only the bare writes any design needs (overhead_app's BENCH_FLOOR).
FLOORS = {"floor: socket": "socket", "floor: file": "file"}
WRITES = {"agent sync": instrument.SYNC_WRITES, "agent async": instrument.ASYNC_WRITES}
DRAIN_DEADLINE_PER_TASK = 0.2  # seconds; generous, a stuck worker still ends the run
SMOKE = {"tasks": 50, "handler_calls": 50}  # --smoke: every code path once, in seconds
SMOKE_NOTE = (
    "smoke run (--smoke): tiny N, so the figures prove the benchmark runs, not the agent's cost"
)


def _worker(broker: str, ledger: str, variant: str, concurrency: int, log: Path
            ) -> subprocess.Popen:  # fmt: skip
    # TMPDIR: the run's own folder, so a worker's multiprocessing folder (pymp-*) goes with it
    env = dict(os.environ, BENCH_BROKER_URL=broker, PYTHONPATH=str(HERE), TMPDIR=str(log.parent))
    for name in (instrument.LEDGER_URL_ENV, instrument.WRITES_ENV, instrument.ARMABLE_ENV,
                 "BENCH_FLOOR"):  # fmt: skip
        env.pop(name, None)
    writes = WRITES.get(variant)
    env["BENCH_AGENT"] = "1" if writes else "0"  # "no agent": no install(app) at all
    if variant in FLOORS:
        env |= {"BENCH_FLOOR": FLOORS[variant], "BENCH_LEDGER_URL": ledger,
                "BENCH_SPOOL_DIR": str(log.parent)}  # fmt: skip
    if writes:
        env |= {instrument.LEDGER_URL_ENV: ledger, instrument.WRITES_ENV: writes,
                instrument.ARMABLE_ENV: ""}  # fmt: skip
    # Celery's defaults (gossip, mingle, heartbeats): the same for every variant.
    command = [sys.executable, "-m", "celery", "-A", "overhead_app", "worker", "-P", "prefork",
               "-c", str(concurrency), "-l", "warning"]  # fmt: skip
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


def measure(task: str, variant: str, args: argparse.Namespace, env: dict) -> float:
    """Tasks per second of one worker draining ``args.tasks`` copies of ``task``."""
    writes = WRITES.get(variant)
    broker, ledger, client = env["broker"], env["ledger"], env["client"]
    broker.client().flushdb()
    ledger.client().flushdb()
    client.send_task("overhead_app.mark", args=["start"])
    for _ in range(args.tasks):
        client.send_task(task)
    client.send_task("overhead_app.mark", args=["end"])
    worker = _worker(broker.url, ledger.url, variant, args.concurrency, env["log"])
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
    if writes:
        wait_agents_gone(ledger.client())  # every byte the worker sent is in
        recorded = ledger.client().llen(h.HISTORY_KEY)
        assert recorded >= 2 * args.tasks, f"the agent recorded only {recorded} events"
        if in_worker is not None:  # None: the end mark ran in a pool process that ran no task
            env["in_worker_us"].setdefault(variant, []).append(float(in_worker))
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


def handler_cost(ledger: RedisServer, writes: str, calls: int = 2000) -> tuple[float, float]:
    """µs per attempt of the agent's prerun + postrun with ``writes``, and how many replies per
    attempt it waited for (Redis round trips).

    The handlers run as Celery runs them, through ``task_prerun``/``task_postrun.send`` (the
    agent's receivers are whatever ``install(app)`` connected), not by their private names."""
    names = (instrument.LEDGER_URL_ENV, instrument.WRITES_ENV, instrument.ARMABLE_ENV)
    os.environ.update(dict(zip(names, (ledger.url, writes, ""), strict=True)))
    task = _timed_task()
    waited = [0]
    link = instrument.wire()
    owner = link if link is not None else instrument.ledger().client
    name = "exchange" if link is not None else "execute_command"
    original = getattr(owner, name)

    def counted(*args, **options):
        waited[0] += 1
        return original(*args, **options)

    setattr(owner, name, counted)

    def attempt(number: int) -> None:
        task_id = f"handler-{writes}-{number}"
        signals.task_prerun.send(sender=task, task_id=task_id, task=task, args=(), kwargs={})
        signals.task_postrun.send(sender=task, task_id=task_id, task=task, args=(), kwargs={},
                                  retval=None, state="SUCCESS")  # fmt: skip

    attempt(-1)  # loads the synchronous agent's Lua script once
    waited[0] = 0
    started = time.perf_counter()
    for number in range(calls):
        attempt(number)
    per_attempt = (time.perf_counter() - started) / calls * 1e6
    round_trips = waited[0] / calls
    if link is not None:
        link.flush()
    recorded = ledger.client().llen(h.HISTORY_KEY)
    assert recorded >= 2 * calls, f"the agent's handlers recorded only {recorded} events"
    setattr(owner, name, original)
    for variable in names:
        del os.environ[variable]
    return per_attempt, round_trips


def ping_cost(ledger: RedisServer, calls: int) -> float:
    """µs per PING: one round trip to the ledger from here."""
    client = ledger.client()
    started = time.perf_counter()
    for _ in range(calls):
        client.ping()
    return (time.perf_counter() - started) / calls * 1e6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
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
               "log": Path(folder) / "worker.log", "in_worker_us": {}}  # fmt: skip
        try:
            rows = [_row(label, task, args, env) for label, task in TASKS.items()]
            handlers = {}
            for variant, writes in WRITES.items():
                ledger.client().flushdb()
                handlers[variant] = handler_cost(ledger, writes, args.handler_calls)
            ping = ping_cost(ledger, args.handler_calls)
        finally:
            client.close()
            broker.stop()
            ledger.stop()
    _print(rows, args)
    for variant, samples in env["in_worker_us"].items():
        print(f"{variant}: handlers (prerun + postrun) inside the pool process: "
              f"{statistics.median(samples):.0f} µs per task")  # fmt: skip
    for variant, (per_attempt, round_trips) in handlers.items():
        print(f"{variant}: handlers (prerun + postrun) in-process: {per_attempt:.0f} µs per "
              f"attempt, {round_trips:.1f} Redis round trips"
              f" (PING here: {ping:.0f} µs)")  # fmt: skip
    if args.smoke:
        print(SMOKE_NOTE)
    return 0


def _row(label: str, task: str, args: argparse.Namespace, env: dict) -> tuple:
    """Every variant once per repetition, in turn, so a change of machine load hits them all."""
    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.repeat):
        for variant in VARIANTS:
            rates[variant].append(measure(task, variant, args, env))
    return label, rates


def _print(rows: list[tuple], args: argparse.Namespace) -> None:
    print(f"{args.tasks} tasks, 1 prefork worker -c {args.concurrency} (Celery's defaults), "
          f"variants alternated, median of {args.repeat}")  # fmt: skip
    for label, rates in rows:
        base = statistics.median(rates["no agent"])
        goal, earlier = GOAL_PERCENT[label], EARLIER_PERCENT[label]
        print(f"{label:<10} {'no agent':<12}{base:>8.0f} t/s")
        for variant in WRITES:
            rate = statistics.median(rates[variant])
            cost = (base - rate) / base * 100
            grade = "PASS" if cost <= goal else "MISS"
            print(f"{label:<10} {variant:<12}{rate:>8.0f} t/s  costs {cost:>+6.1f}%  goal <= "
                  f"{goal:g}% {grade}  (earlier, synchronous: {earlier:g}%)")  # fmt: skip
        for variant in FLOORS:
            rate = statistics.median(rates[variant])
            print(
                f"{label:<10} {variant:<14}{rate:>6.0f} t/s  costs "
                f"{(base - rate) / base * 100:>+6.1f}%  (2 bare writes per task, no agent)"
            )
        runs = "; ".join(f"{v}: " + ", ".join(f"{x:.0f}" for x in rates[v]) for v in VARIANTS)
        print(f"{'':<10} runs (t/s): {runs}")


if __name__ == "__main__":
    sys.exit(main())
