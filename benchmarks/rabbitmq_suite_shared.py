#!/usr/bin/env python
"""The default suite on RabbitMQ twice in one run: every scenario on a node of its own, then in
vhosts of the suite's shared node (placements/local/rabbitmq_shared.py; with ``--backend docker``
a container of its own, then the suite's shared container, docker/rabbitmq_shared.py), the way
a suite run does by default. Prints both wall times beside the goal (faster) and how many
scenarios gave the same status and the same verdict counts both ways (goal: all: a vhost is a
setting the harness adds, so it must not change a verdict).

The suite: every default scenario whose file does not pin its broker, as ``--broker rabbitmq``
selects it. Each way is one ``run_suite`` with ``--jobs`` (2 by default); the node-per-scenario
way passes ``backend_options={"shared_rabbitmq": None}``.

Usage: python benchmarks/rabbitmq_suite_shared.py [--backend local|docker] [--jobs 2]
                                                  [--only NAME]... [--smoke]
``--smoke``: one scenario (a killed worker's messages requeued by RabbitMQ), one at a time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from celery_chaos.core.conclusion import PASSED
from celery_chaos.core.scenario import Scenario, load_suite, with_broker_kind
from celery_chaos.run.runner import RunOptions, run_suite

SUITE = Path(__file__).resolve().parents[1] / "scenarios"
SMOKE_SCENARIO = "ack-late-kill-worker-default-visibility"
Outcome = tuple[str, dict[str, int]]  # status, non-zero verdict counts


def default_suite(only: list[str]) -> list[Scenario]:
    chosen = [s for s in load_suite([SUITE]) if "kind" not in s.broker.model_fields_set]
    chosen = [s for s in chosen if not only or s.name in only]
    return [with_broker_kind(scenario, "rabbitmq") for scenario in chosen]


def run_way(scenarios: list[Scenario], backend: str, jobs: int, shared: bool) -> tuple[float, dict]:
    """(wall seconds, name -> outcome) of one run of ``scenarios``."""
    extra = {} if shared else {"shared_rabbitmq": None}
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(
            backend=backend, report_dir=Path(tmp), jobs=jobs, strict=True, backend_options=extra
        )
        began = time.monotonic()
        suite = run_suite(scenarios, options, log=lambda _: None)
        took = time.monotonic() - began
    found: dict[str, Outcome] = {}
    for result in suite.results:
        counts = result.verdicts.counts if result.verdicts else {}
        found[result.scenario.name] = (result.status, {k: v for k, v in counts.items() if v})
    return took, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("local", "docker"), default="local")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", action="append", default=[], help="a scenario name")
    parser.add_argument("--smoke", action="store_true", help="one scenario, one at a time")
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.only = 1, [SMOKE_SCENARIO]
    scenarios = default_suite(args.only)
    own_s, own = run_way(scenarios, args.backend, args.jobs, shared=False)
    shared_s, shared = run_way(scenarios, args.backend, args.jobs, shared=True)
    report(own_s, own, shared_s, shared, f"{args.backend} RabbitMQ, --jobs {args.jobs}")
    if args.smoke:
        print("smoke run (--smoke): one scenario both ways, so this proves the script runs")
    return 0


def report(own_s: float, own: dict, shared_s: float, shared: dict, how: str) -> None:
    passed = [sum(o[0] == PASSED for o in way.values()) for way in (own, shared)]
    print(f"the default suite on {how}, {len(own)} scenario(s):")
    print(f"  a node per scenario:      {own_s:6.1f} s, {passed[0]}/{len(own)} passed")
    print(f"  vhosts of a shared node:  {shared_s:6.1f} s, {passed[1]}/{len(shared)} passed"
          f"  goal: faster {_grade(shared_s < own_s)}")  # fmt: skip
    same = [name for name in own if own[name] == shared.get(name)]
    print(f"  same status and verdict counts both ways: {len(same)}/{len(own)}"
          f"  goal: all {_grade(len(same) == len(own))}")  # fmt: skip
    for name in sorted(set(own) - set(same)):
        print(f"    {name}: own node {own[name]}, shared node {shared.get(name)}")


def _grade(met: bool) -> str:
    return "PASS" if met else "MISS"


if __name__ == "__main__":
    sys.exit(main())
