"""Strict runs and skipped scenarios, on synthetic histories and the command line's options: an
anomaly verdict nobody claimed fails a strict run (and only a strict one); a scenario whose
optional extra is missing is ``skipped``, exit 0, unless ``--require-all``."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from celery_chaos.core.checker import VERDICTS, BrokerState, check
from celery_chaos.core.conclusion import (
    FAILED,
    NOT_RUNNABLE,
    PASSED,
    SKIPPED,
    ScenarioResult,
    SuiteResult,
    conclude,
    failure_message,
    unproven_faults,
)
from celery_chaos.core.expectations import ANOMALIES, evaluate, expected_for, unclaimed
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.report import files as report

from tests.unit.histories import TASK, completed, killed, lock_acquired

BASE: dict[str, Any] = {
    "name": "strict",
    "description": "strict only",
    "workload": [{"task": TASK, "count": 2}],
}


def judged(history: list[dict[str, Any]], strict: bool, **changes: Any) -> ScenarioResult:
    """What the runner does with a history (broker empty at the end); ``strict``: the run's
    option, ``changes`` the scenario's fields (``strict_field``: its ``strict``)."""
    if "strict_field" in changes:
        changes["strict"] = changes.pop("strict_field")
    scenario = parse_scenario(copy.deepcopy(BASE) | changes, "inline")
    result = ScenarioResult(scenario, PASSED, 1, "local", Path("/tmp/x"))
    result.strict = strict if scenario.strict is None else scenario.strict
    result.verdicts = check(history, BrokerState())
    expect = expected_for(scenario, {"broker": "redis", "celery": "5.6.0"})
    result.expectations = evaluate(expect, result.verdicts.counts)
    result.unclaimed = unclaimed(expect, result.verdicts.counts)
    conclude(result, unproven_faults(history))
    return result


# A killed lock holder never redelivered: lost (ok for the other task), its lock stuck.
KILLED_HOLDER = [*killed("t0", 0), lock_acquired("t0", 1, "doc:doc-0", 0.05), *completed("t1", 1)]


def test_anomalies_are_verdicts_and_leave_out_the_good_outcomes() -> None:
    assert set(ANOMALIES) <= set(VERDICTS)
    good = {"ok", "recovered", "retried", "revoked", "workflow_completed"}
    assert set(VERDICTS) - set(ANOMALIES) == good


def test_strict_fails_on_an_unclaimed_anomaly_naming_it_and_its_offenders() -> None:
    result = judged(KILLED_HOLDER, strict=True, expect={"ok": 1, "lost": 1})

    assert result.unmet == []
    assert result.unclaimed == ["stuck_locks"]
    assert result.status == FAILED
    assert failure_message(result) == "unclaimed: stuck_locks = 1 (lock doc:doc-0 (owner t0))"
    assert result.reason == failure_message(result)  # what result.json and report.html show


def test_without_strict_an_unclaimed_anomaly_is_recorded_but_passes() -> None:
    result = judged(KILLED_HOLDER, strict=False, expect={"ok": 1, "lost": 1})

    assert result.status == PASSED and result.unclaimed == ["stuck_locks"]
    assert "unclaimed" not in failure_message(result)


def test_the_scenario_field_makes_it_strict_and_naming_every_anomaly_passes() -> None:
    field = judged(KILLED_HOLDER, strict=False, expect={"ok": 1, "lost": 1}, strict_field=True)
    assert field.status == FAILED and field.unclaimed == ["stuck_locks"]
    named = judged(KILLED_HOLDER, strict=True, expect={"ok": 1, "lost": 1, "stuck_locks": 1})
    assert named.status == PASSED and named.unclaimed == []
    opted_out = judged(KILLED_HOLDER, strict=True, expect={"ok": 1, "lost": 1}, strict_field=False)
    assert opted_out.status == PASSED and opted_out.unclaimed == ["stuck_locks"]


def test_the_runner_takes_the_scenario_field_over_the_run_option(tmp_path: Path) -> None:
    """``strict: true``/``false`` decide; a scenario that says nothing follows ``--strict``."""
    from celery_chaos.run import runner

    calls = {}
    for field in (None, True, False):
        for option in (False, True):
            data = copy.deepcopy(BASE) | ({} if field is None else {"strict": field})
            scenario = parse_scenario(data, "inline")
            # an unknown backend: the run ends at once (error), strict already decided
            options = runner.RunOptions(backend="no-such-backend", strict=option)
            result = runner.run_scenario(scenario, options, tmp_path, log=lambda _: 0)
            calls[(field, option)] = result.strict
    assert calls == {
        (None, False): False,
        (None, True): True,
        (True, False): True,
        (True, True): True,
        (False, False): False,
        (False, True): False,
    }


def test_a_verdict_named_only_by_an_expect_when_that_applies_is_claimed() -> None:
    rule = {"when": {"celery": ">=5.5"}, "expect": {"stuck_locks": 1}, "why": "the lock's owner"}
    applies = judged(KILLED_HOLDER, strict=True, expect={"ok": 1, "lost": 1}, expect_when=[rule])
    assert applies.status == PASSED
    other = rule | {"when": {"celery": "<5.5"}}
    not_here = judged(KILLED_HOLDER, strict=True, expect={"ok": 1, "lost": 1}, expect_when=[other])
    assert not_here.status == FAILED and not_here.unclaimed == ["stuck_locks"]


def test_unmet_and_unclaimed_are_both_said() -> None:
    result = judged(KILLED_HOLDER, strict=True, expect={"ok": 2})

    assert result.status == FAILED
    assert failure_message(result) == (
        "ok: expected == 2, got 1 (sample_tasks.tasks.work[t1]);"
        " unclaimed: lost = 1 (sample_tasks.tasks.work[t0]);"
        " unclaimed: stuck_locks = 1 (lock doc:doc-0 (owner t0))"
    )


def test_strict_must_be_a_boolean() -> None:
    with pytest.raises(ScenarioError, match=r"^inline: strict: Input should be a valid boolean"):
        parse_scenario(BASE | {"strict": "sometimes"}, "inline")


def test_result_json_and_the_table_show_what_is_unclaimed(tmp_path: Path) -> None:
    result = judged(KILLED_HOLDER, strict=True, expect={"ok": 1, "lost": 1})
    document = report.result_document(result)
    assert (document["strict"], document["unclaimed"]) == (True, ["stuck_locks"])
    rows = {row: cells for row, *cells in _table_rows(result)}
    assert rows["stuck_locks"] == ["1", "", "unclaimed"]


def _table_rows(result: ScenarioResult) -> list[list[str]]:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(report.scenario_table(result))
    lines = console.export_text().splitlines()[2:]
    return [[cell.strip() for cell in line.split("│")] for line in lines if line.strip()]


# --- skipped: an optional extra not installed ---------------------------------------------------


def _status(status: str) -> ScenarioResult:
    scenario = parse_scenario(copy.deepcopy(BASE), "inline")
    hint = "workers.pool gevent: not installed (pip install 'celery-chaos[gevent]')"
    return ScenarioResult(scenario, status, 1, "local", Path("/tmp/x"), reason=hint)


@pytest.mark.parametrize(
    ("statuses", "code"),
    [([SKIPPED], 0), ([PASSED, SKIPPED], 0), ([SKIPPED, FAILED], 1), ([SKIPPED, NOT_RUNNABLE], 2)],
)
def test_a_skipped_scenario_does_not_fail_the_suite(statuses: list[str], code: int) -> None:
    assert SuiteResult([_status(s) for s in statuses], Path("/tmp")).exit_code == code


def test_junit_reports_a_skip_with_the_install_hint() -> None:
    root = ET.fromstring(report.junit_xml(SuiteResult([_status(SKIPPED)], Path("/tmp"))))
    assert (root.get("skipped"), root.get("failures"), root.get("errors")) == ("1", "0", "0")
    skipped = root.find("testcase/skipped")
    assert skipped is not None and "pip install 'celery-chaos[gevent]'" in skipped.get("message")


def test_run_passes_strict_and_require_all_and_says_what_was_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The options reach the runner; a skip exits 0 but is said, with its hint."""
    from celery_chaos.cli import main
    from celery_chaos.run import runner
    from click.testing import CliRunner

    seen: list[runner.RunOptions] = []

    def fake_suite(scenarios: list, options: runner.RunOptions, *_: Any) -> SuiteResult:
        seen.append(options)
        return SuiteResult([_status(SKIPPED), _status(PASSED)], tmp_path)

    monkeypatch.setattr(runner, "run_suite", fake_suite)
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "01-defaults-child-kill.yaml"
    args = ["run", str(scenario), "--report-dir", str(tmp_path)]
    plain = CliRunner().invoke(main, args)
    CliRunner().invoke(main, [*args, "--strict", "--require-all"])

    assert [(o.strict, o.require_all) for o in seen] == [(False, False), (True, True)]
    assert plain.exit_code == 0, plain.output
    assert "1/2 scenarios met their expectations, 1 skipped" in plain.output
    assert "skipped strict: workers.pool gevent: not installed (pip install" in plain.output


def test_every_default_scenario_is_run_strict_by_an_integration_test() -> None:
    """The default suite runs strict in the project's own tests: each file is run through
    ``scenario_support.run`` (strict, failing on an unclaimed anomaly) by some integration test,
    so a new scenario cannot join the suite with a finding nobody claimed."""
    root = Path(__file__).resolve().parents[2]
    strict_runners = [
        path.read_text(encoding="utf-8")
        for path in (root / "tests" / "integration").glob("test_*.py")
        if re.search(r"scenario_support import .*\brun\b", path.read_text(encoding="utf-8"))
    ]
    files = sorted(path.name for path in (root / "scenarios").glob("*.yaml"))
    assert len(files) > 30
    unrun = [name for name in files if not any(f'"{name}"' in text for text in strict_runners)]
    assert unrun == []


@pytest.mark.parametrize(
    ("markexpr", "asked"),
    [("long", True), ("not long", True), ("long and redis", True), ("not belongs", False),
     ("longer", False), ("", False)],
)  # fmt: skip
def test_only_the_long_marker_as_a_word_asks_for_long_scenarios(markexpr: str, asked: bool) -> None:
    """``-m`` names the marker as a word; ``-m 'not belongs'`` must not keep long scenarios."""
    from celery_chaos.pytest_plugin import names_long

    assert names_long(markexpr) is asked
