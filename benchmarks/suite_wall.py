#!/usr/bin/env python
"""Figure e: the default suite's wall time on the local backend with the default options
(``--jobs auto``), beside one at a time (whose verdicts every other run is compared with).

Each run is ``celery-chaos run --jobs N --report-dir TMP`` in a subprocess, exactly as a user
runs it (no path: the suite installed with the package); its wall time counts only if every
scenario passed (read from each ``result.json``), else the run is a MISS naming the scenarios
that did not. The machine's load average is printed with each run: on a shared machine it is the
first thing that moves these figures.

Usage: python benchmarks/suite_wall.py [--jobs auto,1] [--runs 1] [--only NAME]... [--json PATH]
                                       [--report-dir DIR]
                                       [--smoke]
(``bench.py`` prints the same table as figure e.) ``--smoke`` runs two short scenarios once with
``--jobs 1``: it proves the script works, in seconds; its figure is not the suite's. Exit 0 also
on a MISS; 2 when a run wrote no result.json at all (the CLI itself failed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 60.0
# Issue 22: the default options (then --jobs = one per CPU) ran the suite in 162 s here.
EARLIER_DEFAULT_S = 162.0
# --smoke: two short child-kill scenarios of the default suite (~3 s each on an idle machine).
SMOKE_SCENARIOS = ("defaults-child-kill", "ack-late-no-reject-child-kill")


@dataclass
class SuiteRun:
    jobs: str  # "auto" (the default) or a number
    wall: float
    exit_code: int
    load_before: float
    load_after: float
    statuses: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, dict[str, int]] = field(default_factory=dict)
    most_at_once: int = 0  # scenarios that ran at the same moment, at most
    ordered_by_previous: bool = False  # the report folder held an earlier run's durations
    output_tail: str = ""

    @property
    def all_passed(self) -> bool:
        return bool(self.statuses) and all(s == "passed" for s in self.statuses.values())


def run_suite(jobs: str, only: tuple[str, ...] = (), report_dir: Path | None = None) -> SuiteRun:
    """One run of the default suite (or its ``only`` scenarios) with ``--jobs jobs``, into
    ``report_dir`` (a fresh folder when None: no earlier run to order scenarios by)."""
    with tempfile.TemporaryDirectory(prefix="chaos-suite-") as scratch:
        folder = report_dir or Path(scratch)
        previous = (folder / "latest").resolve() if (folder / "latest").exists() else None
        load_before = os.getloadavg()[0]
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "celery_chaos.cli", "run", "--jobs", str(jobs),
             "--report-dir", str(folder), *(arg for name in only for arg in ("--only", name))],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        run = SuiteRun(
            jobs,
            time.perf_counter() - began,
            done.returncode,
            load_before,
            os.getloadavg()[0],
            output_tail=(done.stdout + done.stderr)[-1500:],
            ordered_by_previous=previous is not None,
        )
        latest = (folder / "latest").resolve()
        if latest != previous:  # else the run wrote nothing
            _read_results(run, latest)
    return run


def _read_results(run: SuiteRun, run_dir: Path) -> None:
    spans: list[tuple[float, float]] = []
    for path in sorted(run_dir.glob("*/result.json")):
        document = json.loads(path.read_text())
        run.statuses[document["scenario"]] = document["status"]
        run.durations[document["scenario"]] = document["timings"].get("total", 0.0)
        run.verdicts[document["scenario"]] = document["verdicts"]
        spans.append(_span(path.parent))
    run.most_at_once = most_at_once(spans)


def _span(folder: Path) -> tuple[float, float]:
    """When a scenario's history began and ended (the ledger's clock, shared by all)."""
    stamps = [json.loads(line)["ts"] for line in (folder / "history.jsonl").open()]
    return (min(stamps), max(stamps)) if stamps else (0.0, 0.0)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def measure(
    jobs_list: list[str],
    runs: int,
    log: bool = True,
    only: tuple[str, ...] = (),
    report_dir: Path | None = None,
) -> dict[str, list[SuiteRun]]:
    """``runs`` runs for each ``--jobs`` value, alternating (a load spike hits all of them), all
    into one report folder as a user reruns the suite: every run after the first starts the
    scenarios longest first by the previous run's durations."""
    measured: dict[str, list[SuiteRun]] = {jobs: [] for jobs in jobs_list}
    with tempfile.TemporaryDirectory(prefix="chaos-suites-") as scratch:
        folder = report_dir or Path(scratch)
        for repetition in range(runs):
            for jobs in jobs_list:
                if log:
                    print(f"suite run {repetition + 1}/{runs}, --jobs {jobs} ...", flush=True)
                measured[jobs].append(run_suite(jobs, only, folder))
    return measured


def label(jobs: str) -> str:
    if jobs == "auto":
        return "default options (--jobs auto)"
    return "one at a time (--jobs 1)" if jobs == "1" else f"--jobs {jobs}"


def print_table(measured: dict[str, list[SuiteRun]]) -> None:
    """Median wall time per ``--jobs`` value (runs where every scenario passed), then each run."""
    print(f"{'e. default suite wall time (local)':<54}{'median':>11}   target")
    for jobs, runs in measured.items():
        passing = [r.wall for r in runs if r.all_passed]
        value = f"{statistics.median(passing):.1f} s" if passing else "n/a"
        verdict = "PASS" if passing and len(passing) == len(runs) and statistics.median(
            passing) < TARGET_S else "MISS"  # fmt: skip
        earlier = f"  (earlier, default options: {EARLIER_DEFAULT_S:g} s)" if jobs == "auto" else ""
        print(f"  {label(jobs):<52}{value:>11}   < {TARGET_S:g} s  {verdict}{earlier}")
    for jobs, runs in measured.items():
        for run in runs:
            print(f"  {label(jobs)}: {describe(run)}")
    print_verdict_changes(measured)


def print_verdict_changes(measured: dict[str, list[SuiteRun]]) -> None:
    """Every run's verdicts against the first one-at-a-time run's (the reference)."""
    reference = next(iter(measured.get("1", [])), None)
    if reference is None:
        return
    for jobs, runs in measured.items():
        for number, run in enumerate(runs, 1):
            if run is reference:
                continue
            changed = sorted(
                name for name in reference.verdicts
                if run.verdicts.get(name) != reference.verdicts[name]
            )  # fmt: skip
            said = "the same" if not changed else f"CHANGED for {', '.join(changed)}"
            print(f"  verdicts, {label(jobs)} run {number} vs one at a time run 1: {said}")


def describe(run: SuiteRun) -> str:
    """Wall time, exit code, how many passed (and which did not), the longest scenario, load."""
    failed = ", ".join(f"{n} {s}" for n, s in run.statuses.items() if s != "passed")
    passed = sum(1 for s in run.statuses.values() if s == "passed")
    longest = max(run.durations.items(), key=lambda item: item[1], default=("-", 0.0))
    return (
        f"{run.wall:.1f} s, exit {run.exit_code}, {passed}/{len(run.statuses)} passed"
        + (f" (not passed: {failed})" if failed else "")
        + f", longest {longest[0]} {longest[1]:.1f} s, at most {run.most_at_once} at once"
        + f", load average {run.load_before:.1f} -> {run.load_after:.1f}"
        + (", ordered by the previous run" if run.ordered_by_previous else ", first run")
    )


def as_json(measured: dict[str, list[SuiteRun]]) -> dict[str, object]:
    return {
        "target_s": TARGET_S,
        "runs": {str(jobs): [asdict(r) | {"all_passed": r.all_passed} for r in runs]
                 for jobs, runs in measured.items()},
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--jobs", default="auto,1", help="comma-separated --jobs values (auto: the default)"
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per --jobs value")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the runs here")
    parser.add_argument(
        "--report-dir", type=Path, help="keep the runs here (default: a temporary folder); a "
        "folder with an earlier run orders the first run too"
    )  # fmt: skip
    parser.add_argument("--only", action="append", default=[], help="scenario name (repeatable)")
    parser.add_argument(
        "--smoke", action="store_true", help="two short scenarios, --jobs 1, once: proves it runs"
    )
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.runs, args.only = "1", 1, list(SMOKE_SCENARIOS)
    measured = measure(args.jobs.split(","), args.runs, only=tuple(args.only),
                       report_dir=args.report_dir)  # fmt: skip
    print()
    print_table(measured)
    if args.json:
        args.json.write_text(json.dumps(as_json(measured), indent=2) + "\n", encoding="utf-8")
    if args.smoke:
        print(
            "smoke run (--smoke): two scenarios, not the suite: the figure proves the script runs"
        )
    broken = [r for runs in measured.values() for r in runs if not r.statuses]
    for run in broken:
        print(f"--jobs {run.jobs}: exit {run.exit_code}, no result.json:\n{run.output_tail}",
              file=sys.stderr)  # fmt: skip
    return 2 if broken else 0  # a scenario that did not pass is a MISS above, not a failure


if __name__ == "__main__":
    sys.exit(main())
