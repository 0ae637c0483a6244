#!/usr/bin/env python
"""What a local RabbitMQ node costs a run: its boot, and each question the run asks it.

A/B in one run, alternated: nodes booted with the package's plugins directory (every optional
plugin readable) and with the harness's directory of links to what ``rabbit`` needs
(placements/local/rabbitmq_plugins.py): seconds to an AMQP login and the node's CPU seconds by
then. Then the same ``list_queues`` question asked through ``rabbitmqctl`` (a CLI VM per call)
and through ``erl_call`` (brokers/rabbitmq_erl.py), alternated on one node: seconds per call.
A RabbitMQ scenario boots one node (two with a broker restart) and asks 4-6 questions; the CI's
~115 RabbitMQ tests pay it each time (issue 22: CI <= 15 min).

Usage: python benchmarks/rabbitmq_node.py [--boots 3] [--calls 10] [--smoke]
``--smoke``: one boot each, 2 calls each; proves it runs.
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
    report(boots, calls)
    if args.smoke:
        print("smoke run (--smoke): one boot and two calls each, so this proves the script runs")
    return 0


def report(boots: dict[bool, list[tuple[float, float]]], calls: dict[bool, list[float]]) -> None:
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


def _grade(met: bool) -> str:
    return "PASS" if met else "MISS"


if __name__ == "__main__":
    sys.exit(main())
