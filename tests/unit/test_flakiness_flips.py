"""benchmarks/flakiness.py's counting: a flip is a run whose outcome differs from the scenario's
most common one, whichever verdict changed (named in ``expect:`` or not); runs that did not run
are counted apart. Pure: result.json documents are built here, nothing runs."""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _flakiness():
    spec = importlib.util.spec_from_file_location("flakiness", BENCHMARKS / "flakiness.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("flakiness", module)
    spec.loader.exec_module(module)
    return module


flakiness = _flakiness()


def _result(name: str, status: str, **verdicts: int) -> dict:
    counts = {"ok": 1, "lost": 0, "worker_crashes": 0} | verdicts
    unmet = [{"verdict": "lost", "wanted": "== 0", "actual": counts["lost"], "met": False}]
    return {
        "scenario": name,
        "status": status,
        "seed": 7,
        "reason": "",
        "timings": {"total": 3.0},
        "verdicts": None if status in ("error", "not_runnable") else counts,
        "expectations": unmet if status == "failed" else [],
        "unclaimed": ["worker_crashes"] if counts["worker_crashes"] else [],
    }


def test_an_unnamed_verdict_that_changes_between_runs_is_a_flip() -> None:
    tallies = defaultdict(flakiness.ScenarioTally)
    runs = [{}, {}, {"worker_crashes": 1}, {}]  # passes every time; one run counts a crash
    for number, verdicts in enumerate(runs, 1):
        flakiness.tally(tallies, number, [_result("s", "passed", **verdicts)])
    flips, varying = tallies["s"].flips()
    assert flips == 1
    assert varying == {"worker_crashes": {"0": 3, "1": 1}}
    assert tallies["s"].passed == 4 and tallies["s"].unclaimed == {"worker_crashes"}
    assert flakiness.totals(tallies)["flips"] == 1


def test_a_missed_expectation_flips_status_and_is_counted_as_differed() -> None:
    tallies = defaultdict(flakiness.ScenarioTally)
    flakiness.tally(tallies, 1, [_result("s", "passed")])
    flakiness.tally(tallies, 2, [_result("s", "failed", ok=0, lost=1)])
    flakiness.tally(tallies, 3, [_result("s", "passed")])
    flips, varying = tallies["s"].flips()
    assert flips == 1
    assert set(varying) == {"status", "ok", "lost"}
    assert [miss["run"] for miss in tallies["s"].differed] == [2]
    assert tallies["s"].differed[0]["unmet"] == ["lost: expected == 0, got 1"]


def test_runs_that_could_not_run_are_apart_and_never_flips() -> None:
    tallies = defaultdict(flakiness.ScenarioTally)
    flakiness.tally(tallies, 1, [_result("s", "passed")])
    flakiness.tally(tallies, 2, [_result("s", "error")])
    assert tallies["s"].flips() == (0, {})
    assert len(tallies["s"].not_run) == 1 and tallies["s"].passed == 1


def test_the_markdown_summary_names_each_flip() -> None:
    tallies = defaultdict(flakiness.ScenarioTally)
    flakiness.tally(tallies, 1, [_result("a", "passed"), _result("b", "passed")])
    flakiness.tally(tallies, 2, [_result("a", "passed", worker_crashes=1), _result("b", "passed")])
    args = flakiness.parse_args(["--runs", "2"])
    text = flakiness.markdown(flakiness.summary(args, [Path("suite")], tallies, [10.0, 12.0]))
    assert "verdict flips: **1** in 1 scenarios (target 0, MISS)" in text
    assert "| a | 2 | 0 | 0 | 0 | 1 | worker_crashes 0 x1, 1 x1 |" in text
    assert "| b | 2 | 0 | 0 | 0 | 0 | - |" in text
