#!/usr/bin/env python
"""Flakiness of the default suite: run it N times and count verdicts that missed their expectation.

Each run is what a user types, ``celery-chaos run SUITE --report-dir DIR`` in a subprocess, on the
local backend unless ``--backend``/``--broker`` say otherwise; every scenario's ``result.json`` is
then read back. A scenario whose verdicts differ
from its ``expect:`` in any run is flaky (or wrong): the target is 0 such runs for every scenario.
Scenarios the machine cannot run (``not_runnable``, e.g. ``oom`` without a writable memory cgroup)
and runs that errored are counted apart, never as passes.

Usage: python benchmarks/flakiness.py [--runs 20] [--suite PATH] [--only NAME]...
                                      [--backend local|docker] [--broker redis|rabbitmq]
                                      [--json PATH] [--keep-reports DIR]
Exit 0 when every scenario met its expectations in every run, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

PASSED, FAILED = "passed", "failed"


@dataclass
class ScenarioTally:
    """One scenario across all runs."""

    passed: int = 0
    differed: list[dict[str, Any]] = field(default_factory=list)  # run, seed, unmet expectations
    not_run: list[dict[str, Any]] = field(default_factory=list)  # run, status, reason
    wall: list[float] = field(default_factory=list)


def built_in_suite() -> Path:
    """The default suite as installed with the package (works without a clone)."""
    return Path(str(resources.files("celery_chaos.scenarios")))


def run_once(args: argparse.Namespace, suite: Path, report_dir: Path) -> tuple[float, int, str]:
    """One ``celery-chaos run``; its wall time, exit code and the tail of its output."""
    command = [sys.executable, "-m", "celery_chaos.cli", "run", str(suite)]
    command += ["--report-dir", str(report_dir), "--backend", args.backend]
    command += ["--broker", args.broker] if args.broker else []
    command += [arg for name in args.only for arg in ("--only", name)]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    return time.monotonic() - start, done.returncode, (done.stdout + done.stderr)[-2000:]


def read_results(report_dir: Path) -> list[dict[str, Any]]:
    """Every scenario's result.json of the run (``latest`` is a link to the same run)."""
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(report_dir.glob("*/*/result.json"))
        if not path.parents[1].is_symlink()
    ]


def tally(tallies: dict[str, ScenarioTally], run: int, results: list[dict[str, Any]]) -> None:
    for result in results:
        entry = tallies[result["scenario"]]
        timings = result.get("timings") or {}
        if "total" in timings:
            entry.wall.append(float(timings["total"]))
        if result["status"] == PASSED:
            entry.passed += 1
        elif result["status"] == FAILED:
            unmet = [
                f"{e['verdict']}: expected {e['wanted']}, got {e['actual']}"
                for e in result["expectations"]
                if not e["met"]
            ]
            entry.differed.append(
                {"run": run, "seed": result["seed"], "unmet": unmet, "reason": result["reason"]}
            )
        else:
            skipped = {"run": run, "status": result["status"], "reason": result["reason"]}
            entry.not_run.append(skipped)


def seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.1f} s, max {max(values):.1f} s"


def print_report(tallies: dict[str, ScenarioTally], walls: list[float], runs: int) -> int:
    """The per-scenario table and the totals; the number of runs whose verdicts differed."""
    width = max((len(name) for name in tallies), default=10)
    print(f"\n{'scenario':<{width}}  passed  differed  not run  wall per scenario")
    for name, entry in sorted(tallies.items()):
        print(
            f"{name:<{width}}  {entry.passed:>6}  {len(entry.differed):>8}  {len(entry.not_run):>7}"
            f"  {seconds(entry.wall)}"
        )
        for miss in entry.differed:
            print(f"    run {miss['run']} (seed {miss['seed']}): {'; '.join(miss['unmet'])}")
        for skipped in entry.not_run[:1]:
            print(f"    {skipped['status']}: {skipped['reason']}")
    differed = sum(len(entry.differed) for entry in tallies.values())
    print(f"\n{runs} runs of the suite; wall time per run: {seconds(walls)}")
    print(f"verdicts that differed from their expectation: {differed} (target 0)")
    return differed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="how many runs of the suite (20)")
    parser.add_argument("--suite", type=Path, default=None, help="default: the built-in suite")
    parser.add_argument("--only", action="append", default=[], help="scenario name (repeatable)")
    parser.add_argument("--backend", choices=["local", "docker"], default="local")
    parser.add_argument(
        "--broker",
        choices=["redis", "rabbitmq"],
        default=None,
        help="every scenario on this broker (default: each scenario's own)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--keep-reports", type=Path, default=None, help="keep the reports here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = args.suite or built_in_suite()
    tallies: dict[str, ScenarioTally] = defaultdict(ScenarioTally)
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="chaos-flakiness-") as scratch:
        reports = args.keep_reports or Path(scratch)
        for run in range(1, args.runs + 1):
            report_dir = reports / f"run-{run:02d}"
            wall, code, tail = run_once(args, suite, report_dir)
            results = read_results(report_dir)
            if not results:
                print(f"run {run}: exit {code}, no result.json written:\n{tail}", file=sys.stderr)
                return 2
            walls.append(wall)
            tally(tallies, run, results)
            print(f"run {run}/{args.runs}: exit {code}, {len(results)} scenarios, {wall:.1f} s")
    differed = print_report(tallies, walls, args.runs)
    if args.json:
        document = {"suite": str(suite), "runs": args.runs, "wall_per_run_s": walls}
        document |= {"backend": args.backend, "broker": args.broker}
        document["scenarios"] = {name: vars(entry) for name, entry in sorted(tallies.items())}
        args.json.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return 1 if differed else 0


if __name__ == "__main__":
    sys.exit(main())
