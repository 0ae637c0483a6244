#!/usr/bin/env python
"""Flakiness of the default suite: run it N times and count verdict flips per scenario.

Each run is what a user types, ``celery-chaos run SUITE --report-dir DIR`` in a subprocess, on the
local backend unless ``--backend``/``--broker`` say otherwise; every scenario's ``result.json`` is
then read back. Two figures, both with target 0:

- **verdict flips**: per scenario, the runs whose status and verdict counts differ from that
  scenario's most common outcome (any verdict, named in ``expect:`` or not: a count that changes
  between runs of the same scenario is an outcome the suite does not control), with the verdicts
  that varied and their values;
- **differed from expectation**: runs whose verdicts missed the scenario's ``expect:`` (status
  ``failed``), with the run, the seed that replays it and the unmet expectations.

Scenarios the machine cannot run (``not_runnable``, ``skipped``, ``error``) are counted apart,
never as passes and never as flips. ``--json``/``--markdown`` write the summary, rewritten after
every run, so an interrupted measurement keeps what it measured.

Usage: python benchmarks/flakiness.py [--runs 20] [--suite PATH]... [--only NAME]... [--jobs N]
                                      [--backend local|docker] [--broker redis|rabbitmq]
                                      [--strict] [--json PATH] [--markdown PATH]
                                      [--keep-reports DIR] [--smoke]
Exit 0 when the measurement completed (a missed target prints MISS), 2 when a run wrote no report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"
# --smoke: two short child-kill scenarios once (~15 s): proves the script works, measures nothing.
SMOKE_SCENARIOS = ("defaults-child-kill", "ack-late-no-reject-child-kill")


@dataclass
class ScenarioTally:
    """One scenario across all runs."""

    passed: int = 0
    differed: list[dict[str, Any]] = field(default_factory=list)  # run, seed, unmet expectations
    inconclusive: list[dict[str, Any]] = field(default_factory=list)  # run, seed, reason
    not_run: list[dict[str, Any]] = field(default_factory=list)  # run, status, reason
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # run, seed, status, verdicts
    unclaimed: set[str] = field(default_factory=set)  # non-zero verdicts its expect: never names
    wall: list[float] = field(default_factory=list)

    def flips(self) -> tuple[int, dict[str, dict[str, int]]]:
        """Runs whose outcome differs from the most common one, and every varying field's values
        (``status`` or a verdict name) with how many runs had each."""
        if not self.outcomes:
            return 0, {}
        keys = [json.dumps([o["status"], o["verdicts"]], sort_keys=True) for o in self.outcomes]
        most_common = Counter(keys).most_common(1)[0][1]
        names = {"status"} | {name for o in self.outcomes for name in o["verdicts"]}
        varying = {}
        for name in sorted(names):
            values = Counter(
                str(o["status"] if name == "status" else o["verdicts"].get(name))
                for o in self.outcomes
            )
            if len(values) > 1:
                varying[name] = dict(values.most_common())
        return len(keys) - most_common, varying


def built_in_suite() -> Path:
    """The default suite as installed with the package (works without a clone)."""
    return Path(str(resources.files("celery_chaos.scenarios")))


def run_once(
    args: argparse.Namespace, suite: list[Path], report_dir: Path
) -> tuple[float, int, str]:
    """One ``celery-chaos run``; its wall time, exit code and the tail of its output."""
    command = [sys.executable, "-m", "celery_chaos.cli", "run", *map(str, suite)]
    command += ["--report-dir", str(report_dir), "--backend", args.backend]
    command += ["--broker", args.broker] if args.broker else []
    command += ["--jobs", str(args.jobs)] if args.jobs else []
    command += ["--strict"] if args.strict else []
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
        status, seed = result["status"], result.get("seed")
        if status in (PASSED, FAILED, INCONCLUSIVE) and result.get("verdicts") is not None:
            entry.outcomes.append(
                {"run": run, "seed": seed, "status": status, "verdicts": result["verdicts"]}
            )
            entry.unclaimed.update(result.get("unclaimed") or [])
        if status == PASSED:
            entry.passed += 1
        elif status == FAILED:
            unmet = [
                f"{e['verdict']}: expected {e['wanted']}, got {e['actual']}"
                for e in result.get("expectations") or []
                if not e["met"]
            ]
            entry.differed.append(
                {"run": run, "seed": seed, "unmet": unmet, "reason": result.get("reason")}
            )
        elif status == INCONCLUSIVE:
            entry.inconclusive.append({"run": run, "seed": seed, "reason": result.get("reason")})
        else:
            entry.not_run.append({"run": run, "status": status, "reason": result.get("reason")})


def seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.1f} s, max {max(values):.1f} s"


def totals(tallies: dict[str, ScenarioTally]) -> dict[str, int]:
    flips = {name: entry.flips()[0] for name, entry in tallies.items()}
    return {
        "flips": sum(flips.values()),
        "flipping_scenarios": sum(1 for n in flips.values() if n),
        "differed": sum(len(entry.differed) for entry in tallies.values()),
        "inconclusive": sum(len(entry.inconclusive) for entry in tallies.values()),
        "not_run": sum(len(entry.not_run) for entry in tallies.values()),
    }


def grade(value: int) -> str:
    return "PASS" if value == 0 else "MISS"


def varying_text(varying: dict[str, dict[str, int]]) -> str:
    return "; ".join(
        f"{name} " + ", ".join(f"{value} x{count}" for value, count in values.items())
        for name, values in varying.items()
    )


def print_report(tallies: dict[str, ScenarioTally], walls: list[float], runs: int) -> None:
    """The per-scenario table, then the totals beside their targets."""
    width = max((len(name) for name in tallies), default=10)
    print(f"\n{'scenario':<{width}}  passed  differed  inconcl.  not run  flips  wall per scenario")
    for name, entry in sorted(tallies.items()):
        flips, varying = entry.flips()
        print(
            f"{name:<{width}}  {entry.passed:>6}  {len(entry.differed):>8}"
            f"  {len(entry.inconclusive):>8}  {len(entry.not_run):>7}  {flips:>5}"
            f"  {seconds(entry.wall)}"
        )
        if varying:
            print(f"    flipped: {varying_text(varying)}")
        for miss in entry.differed:
            print(f"    run {miss['run']} (seed {miss['seed']}): {'; '.join(miss['unmet'])}")
        for other in entry.inconclusive:
            print(f"    run {other['run']} (seed {other['seed']}) inconclusive: {other['reason']}")
        for skipped in entry.not_run[:1]:
            print(f"    {skipped['status']}: {skipped['reason']}")
        if entry.unclaimed:
            print(f"    unclaimed (non-zero, not in expect): {', '.join(sorted(entry.unclaimed))}")
    total = totals(tallies)
    print(f"\n{runs} runs of the suite; wall time per run: {seconds(walls)}")
    print(
        f"verdict flips: {total['flips']} in {total['flipping_scenarios']} scenarios"
        f"   target 0  {grade(total['flips'])}"
    )
    print(
        f"verdicts that differed from their expectation: {total['differed']}"
        f"   target 0  {grade(total['differed'])}"
    )
    print(f"inconclusive: {total['inconclusive']}, not run: {total['not_run']} (counted apart)")


def summary(
    args: argparse.Namespace,
    suite: list[Path],
    tallies: dict[str, ScenarioTally],
    walls: list[float],
) -> dict[str, Any]:
    """Everything measured so far, for ``--json`` and ``--markdown``."""
    scenarios = {}
    for name, entry in sorted(tallies.items()):
        flips, varying = entry.flips()
        scenarios[name] = {
            "passed": entry.passed,
            "flips": flips,
            "varying": varying,
            "differed": entry.differed,
            "inconclusive": entry.inconclusive,
            "not_run": entry.not_run,
            "unclaimed": sorted(entry.unclaimed),
            "outcomes": entry.outcomes,
            "wall_s": entry.wall,
        }
    return {
        "suite": [str(path) for path in suite],
        "only": args.only,
        "runs": args.runs,
        "runs_completed": len(walls),
        "backend": args.backend,
        "broker": args.broker,
        "jobs": args.jobs,
        "strict": args.strict,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average": os.getloadavg()[0],
        "wall_per_run_s": walls,
        "totals": totals(tallies),
        "scenarios": scenarios,
    }


def markdown(document: dict[str, Any]) -> str:
    """The summary as a markdown table, ready for an issue's closing note."""
    total = document["totals"]
    broker = document["broker"] or "each scenario's own"
    lines = [
        f"# Flakiness: {document['runs_completed']} of {document['runs']} runs,"
        f" backend {document['backend']}, broker {broker}",
        "",
        f"- verdict flips: **{total['flips']}** in {total['flipping_scenarios']} scenarios"
        f" (target 0, {grade(total['flips'])})",
        f"- verdicts that differed from their expectation: **{total['differed']}**"
        f" (target 0, {grade(total['differed'])})",
        f"- inconclusive: {total['inconclusive']}, not run: {total['not_run']}",
        f"- wall time per suite run: {seconds(document['wall_per_run_s'])}"
        f" ({document['machine']['cpus']} CPUs, load average at the end"
        f" {document['load_average']:.1f})",
        "",
        "| scenario | passed | differed | inconclusive | not run | flips | what flipped | wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in document["scenarios"].items():
        lines.append(
            f"| {name} | {entry['passed']} | {len(entry['differed'])}"
            f" | {len(entry['inconclusive'])} | {len(entry['not_run'])} | {entry['flips']}"
            f" | {varying_text(entry['varying']) or '-'} | {seconds(entry['wall_s'])} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="how many runs of the suite (20)")
    parser.add_argument(
        "--suite",
        type=Path,
        action="append",
        default=[],
        help="scenario file or folder, repeatable (default: the built-in suite)",
    )
    parser.add_argument("--only", action="append", default=[], help="scenario name (repeatable)")
    parser.add_argument("--jobs", type=int, default=None, help="celery-chaos run --jobs N")
    parser.add_argument("--backend", choices=["local", "docker"], default="local")
    parser.add_argument(
        "--broker",
        choices=["redis", "rabbitmq"],
        default=None,
        help="every scenario on this broker (default: each scenario's own)",
    )
    parser.add_argument("--strict", action="store_true", help="celery-chaos run --strict")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--markdown", type=Path, default=None, help="write a summary table here")
    parser.add_argument("--keep-reports", type=Path, default=None, help="keep the reports here")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"1 run of {' and '.join(SMOKE_SCENARIOS)} (unless --only): proves it works",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.only = 1, args.only or list(SMOKE_SCENARIOS)
    if args.runs < 1:
        parser.error("--runs: must be at least 1")
    if args.keep_reports and any(args.keep_reports.glob("run-*")):
        parser.error(f"--keep-reports: {args.keep_reports} already holds run-* folders")
    return args


def write_summary(
    args: argparse.Namespace,
    suite: list[Path],
    tallies: dict[str, ScenarioTally],
    walls: list[float],
) -> None:
    document = summary(args, suite, tallies, walls)
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown(document), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = args.suite or [built_in_suite()]
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
            write_summary(args, suite, tallies, walls)
            print(f"run {run}/{args.runs}: exit {code}, {len(results)} scenarios, {wall:.1f} s")
    print_report(tallies, walls, args.runs)
    for path in (args.json, args.markdown):
        if path:
            print(f"wrote {path}")
    if args.smoke:
        print("smoke run (--smoke): one run of two scenarios proves the script works, not a figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
