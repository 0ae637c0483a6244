#!/usr/bin/env python
"""Does an event survive the SIGKILL of the process that sent it without waiting for a reply?

The claim the fire-and-forget agent rests on (issue 22): a ``sendall`` that returned has handed
the bytes to the kernel, which delivers them after the writer is SIGKILLed. N forked writers each
connect to a ledger ``redis-server`` (``CLIENT SETNAME``, ``CLIENT REPLY OFF``), send M pipelined
``RPUSH`` commands one ``sendall`` each, and SIGKILL themselves right after the last one returned.
Counted: events that arrived (per writer, in order); whether each writer's connection left
``CLIENT LIST`` (Redis frees a connection only after reading its end, so its absence proves
every byte before it was read); the cost of one fire-and-forget send against one round trip.

Usage: python benchmarks/ledger_kill_writers.py [--writers 200] [--events 50] [--smoke]
``--smoke``: 20 writers of 10 events, proves it runs. A lost event prints MISS and exits 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from celery_chaos.agent.ledger_wire import CLIENT_NAME_PREFIX, WireLedger, command
from celery_chaos.placements.local.redis_server import RedisServer

KEY = "kill-writers"


def _writer(url: str, index: int, events: int) -> None:
    """Child: send ``events`` RPUSHes without reading a reply, then SIGKILL itself."""
    wire = WireLedger(url)
    for n in range(events):
        wire.sock.sendall(command("RPUSH", KEY, f"{index}:{n}"))
    os.kill(os.getpid(), signal.SIGKILL)


def _spawn(url: str, writers: int, events: int) -> list[int]:
    pids = []
    for index in range(writers):
        pid = os.fork()
        if pid == 0:
            try:
                _writer(url, index, events)
            finally:
                os._exit(1)  # only if the writer failed before its SIGKILL
        pids.append(pid)
    return pids


def _reap(pids: list[int]) -> int:
    """How many writers died of SIGKILL (the rest failed before their last send)."""
    killed = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return killed


def _agents_left(client, deadline: float) -> tuple[int, float]:
    """Writers' connections still in CLIENT LIST when they all left or ``deadline`` passed."""
    began = time.monotonic()
    while True:
        left = sum(c["name"].startswith(CLIENT_NAME_PREFIX) for c in client.client_list())
        if left == 0 or time.monotonic() > deadline:
            return left, time.monotonic() - began
        time.sleep(0.001)


def _in_order(items: list[bytes], writers: int, events: int) -> bool:
    seen: dict[int, int] = {}
    for item in items:
        index, n = map(int, item.split(b":"))
        if n != seen.get(index, -1) + 1:
            return False
        seen[index] = n
    return len(seen) == writers and all(v == events - 1 for v in seen.values())


def _costs(url: str, client, rounds: int = 2000) -> tuple[float, float]:
    """Microseconds per fire-and-forget send and per round trip (RPUSH, reply read)."""
    wire = WireLedger(url)
    began = time.perf_counter()
    for n in range(rounds):
        wire.send("RPUSH", "cost", n)
    wire.flush()
    send = (time.perf_counter() - began) / rounds * 1e6
    began = time.perf_counter()
    for n in range(rounds):
        client.rpush("cost", n)
    trip = (time.perf_counter() - began) / rounds * 1e6
    wire.close()
    return send, trip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=200)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="20 writers of 10 events")
    args = parser.parse_args(argv)
    if args.smoke:
        args.writers, args.events = 20, 10
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer("ledger", Path(tmp))
        server.start()
        try:
            client = server.client()
            pids = _spawn(server.url, args.writers, args.events)
            killed = _reap(pids)
            left, waited = _agents_left(client, time.monotonic() + 10)
            items = client.lrange(KEY, 0, -1)
            send, trip = _costs(server.url, client)
        finally:
            server.stop()
    expected = args.writers * args.events
    ordered = _in_order(items, args.writers, args.events)
    lost = expected - len(items)
    print(f"writers SIGKILLed right after their last send: {killed} of {args.writers}")
    print(f"events lost: {lost} of {expected}, per-writer order kept: {ordered}  goal: none lost "
          f"{_grade(lost == 0 and ordered)}")  # fmt: skip
    print(f"writers' connections left in CLIENT LIST: {left} ({waited * 1000:.1f} ms after the "
          f"last writer was reaped)  goal: none left {_grade(left == 0)}")  # fmt: skip
    print(f"cost: {send:.1f} us per fire-and-forget send, {trip:.1f} us per round trip")
    if args.smoke:
        print("smoke run (--smoke): few writers, so this proves the script runs")
    return 0 if lost == 0 and ordered and left == 0 else 1


def _grade(met: bool) -> str:
    return "PASS" if met else "MISS"


if __name__ == "__main__":
    sys.exit(main())
