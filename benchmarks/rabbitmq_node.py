#!/usr/bin/env python
"""What a local RabbitMQ node costs a run: its boot, and each question the run asks it.

A/B in one run, alternated: nodes booted with the package's plugins directory (every optional
plugin readable) and with the harness's directory of links to what ``rabbit`` needs
(placements/local/rabbitmq_plugins.py): seconds to an AMQP login and the node's CPU seconds by
then. Then the same ``list_queues`` question asked through ``rabbitmqctl`` (a CLI VM per call)
and through ``erl_call`` (brokers/rabbitmq_erl.py), alternated on one node: seconds per call.
Last, what a scenario of a suite pays instead of a boot: a vhost of its own added and deleted on
the suite's shared node (placements/local/rabbitmq_shared.py), seconds and the node's CPU
seconds per vhost. A RabbitMQ scenario asks 4-6 questions; one that crashes the broker boots its
own node (two boots with the restart); the CI's ~115 RabbitMQ tests pay it (issue 22).

Usage: python benchmarks/rabbitmq_node.py [--boots 3] [--calls 10] [--smoke]
``--smoke``: one boot each, 2 calls and 2 vhosts; proves it runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from celery_chaos.brokers import rabbitmq_erl, rabbitmq_inspection
from celery_chaos.placements.local import rabbitmq_server
from celery_chaos.placements.local.rabbitmq_plugins import plugins_dir
from celery_chaos.placements.local.rabbitmq_shared import SharedRabbitMQ

COLUMNS = ("name", *rabbitmq_inspection.COUNT_COLUMNS, "policy")


def boot(
    workdir: Path, name: str, core: bool
) -> tuple[float, float, rabbitmq_server.RabbitMQServer]:
    """(seconds to an AMQP login, node CPU seconds by then, the node): ``core`` boots with the
    harness's plugins links, else with the package's own directory."""
    node = rabbitmq_server.RabbitMQServer(name, workdir)
    if not core:
        node.plugins_dir = plugins_dir(rabbitmq_server.find_rabbitmq()[0])
    began = time.monotonic()
    node.start()
    took = time.monotonic() - began
    cpu = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in node.pids())
    return took, cpu, node


def ask(node: rabbitmq_server.RabbitMQServer, fast: bool) -> float:
    began = time.monotonic()
    if fast:
        assert rabbitmq_erl.queue_rows(node, "/", COLUMNS) is not None, "erl_call did not answer"
    else:
        rabbitmq_inspection.ctl_rows(node, "list_queues", "-p", "/", *COLUMNS)
    return time.monotonic() - began


def vhosts(workdir: Path, count: int) -> list[tuple[float, float]]:
    """(seconds, node CPU seconds) of each of ``count`` vhosts added and deleted on a shared node
    (booted first, not counted), as a scenario's placement starts and discards its broker."""
    with SharedRabbitMQ(workdir / "shared") as shared:
        node = shared.running_node()
        found = []
        for n in range(count):
            cpu = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in node.pids())
            began = time.monotonic()
            lease = shared.lease(f"bench-{n}", workdir / f"run-{n}")
            lease.start()
            lease.discard()
            took = time.monotonic() - began
            after = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in node.pids())
            found.append((took, after - cpu))
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=3, help="nodes booted per variant")
    parser.add_argument("--calls", type=int, default=10, help="questions asked per variant")
    parser.add_argument("--smoke", action="store_true", help="1 boot and 2 calls per variant")
    args = parser.parse_args(argv)
    if args.smoke:
        args.boots, args.calls = 1, 2
    boots: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    calls: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.boots):
            for core in (n % 2 == 0, n % 2 != 0):  # alternated: neither always goes first
                took, cpu, node = boot(Path(tmp), f"node-{n}-{int(core)}", core)
                try:
                    boots[core].append((took, cpu))
                    if core and not calls[True]:
                        for i in range(args.calls * 2):
                            calls[i % 2 == 0].append(ask(node, i % 2 == 0))
                finally:
                    node.remove()
        leased = vhosts(Path(tmp), args.calls)
    report(boots, calls, leased)
    if args.smoke:
        print("smoke run (--smoke): one boot, two calls and two vhosts each: proves it runs")
    return 0


def report(
    boots: dict[bool, list[tuple[float, float]]],
    calls: dict[bool, list[float]],
    leased: list[tuple[float, float]],
) -> None:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    package = median([t for t, _ in boots[False]]), median([c for _, c in boots[False]])
    core = median([t for t, _ in boots[True]]), median([c for _, c in boots[True]])
    print(f"node boot, package plugins dir: {package[0]:.2f} s, node CPU {package[1]:.2f} s")
    print(f"node boot, core plugins links:  {core[0]:.2f} s, node CPU {core[1]:.2f} s"
          f"  goal: faster than the package dir {_grade(core[0] < package[0])}")  # fmt: skip
    print(f"list_queues via rabbitmqctl: {median(calls[False]):.3f} s per call (earlier figure)")
    print(f"list_queues via erl_call:    {median(calls[True]):.3f} s per call"
          f"  goal: <= 0.05 s {_grade(median(calls[True]) <= 0.05)}")  # fmt: skip
    took, cpu = median([t for t, _ in leased]), median([c for _, c in leased])
    print(f"a scenario's broker, a node of its own: {core[0]:.2f} s, node CPU {core[1]:.2f} s"
          " (the boot above)")  # fmt: skip
    print(f"a scenario's broker, a vhost on the shared node: {took:.3f} s, node CPU {cpu:.3f} s"
          f"  goal: <= 0.1 s {_grade(took <= 0.1)}")  # fmt: skip


def _grade(met: bool) -> str:
    return "PASS" if met else "MISS"


if __name__ == "__main__":
    sys.exit(main())
