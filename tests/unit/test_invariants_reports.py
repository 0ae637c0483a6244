"""Every report names a broken invariant with its value and each ``result_not_stored`` task:
the console lines, junit.xml, summary.md, result.json and report.html, from one run's verdicts
(the checker on a synthetic history and a measured app state)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from celery_chaos.core.app_state import AppState, InvariantValue
from celery_chaos.core.checker import check
from celery_chaos.core.conclusion import FAILED, ScenarioResult, SuiteResult, conclude
from celery_chaos.core.expectations import evaluate, expected_for
from celery_chaos.core.explain_app import app_lines
from celery_chaos.report import explained
from celery_chaos.report import files as report
from celery_chaos.report.html import render_scenario
from celery_chaos.report.messages import assert_verdicts

from tests.unit.histories import TASK, dispatch, end, fault, process_exit, start
from tests.unit.inline_scenario import scenario

A, B = "task-a", "task-b"
BROKEN = "invariant no-stuck-document = 2 (expected 0)"
NOT_STORED = f"{TASK}[{B}] completed but the result backend holds PENDING"
SQL = "SELECT count(*) FROM documents WHERE backend_lock"


def history() -> list[dict[str, Any]]:
    """Task A killed mid-task (its row stays locked); task B completes and stores a result."""
    return [
        dispatch(A, 0, 0.0),
        dispatch(B, 1, 0.0),
        start(A, 1, 0.1),
        fault(0, 0.5, [(A, 1)]),
        process_exit(A, 1, 0.55),
        start(B, 1, 0.6) | {"stores_result": True},
        end(B, 1, 1.0),
    ]


def app_state() -> AppState:
    return AppState(
        invariants=[
            InvariantValue("no-stuck-document", "sql", SQL, 0, 2.0),
            InvariantValue("exports", "path", "media/*.zip", {"min": 1, "max": 1}, 1.0),
        ],
        results={B: "PENDING"},
        result_backend="redis://results.example:6379/1",
    )


def run_result(tmp_path: Path) -> ScenarioResult:
    plan = scenario(
        name="doc-ingest",
        services={"postgres": {}},
        invariants=[
            {"name": "no-stuck-document", "sql": SQL, "expect": 0},
            {"name": "exports", "path": "media/*.zip", "expect": {"min": 1, "max": 1}},
        ],
        expect={"result_not_stored": 0},
    )
    result = ScenarioResult(plan, FAILED, 1, "local", tmp_path / "doc-ingest")
    result.verdicts = check(history(), app_state=app_state())
    result.expectations = evaluate(expected_for(plan, {}), result.verdicts.counts)
    conclude(result, [])
    explained.fill(result, history())
    return result


def test_the_console_names_the_broken_invariant_and_the_unstored_result(tmp_path: Path) -> None:
    result = run_result(tmp_path)
    assert result.status == FAILED
    footer = report.scenario_footer(result)
    assert BROKEN in footer and NOT_STORED in footer
    assert "explained: invariant_violations no-stuck-document: after the run" in footer
    assert f"{SQL!r} returned 2, expected 0" in footer
    assert "1 task(s) had an attempt killed mid-task" in footer
    assert "explained: result_not_stored" in footer
    assert "redis://results.example:6379/1 holds PENDING" in footer
    assert f"AsyncResult({B!r}) never sees SUCCESS" in footer


def test_junit_and_summary_name_them(tmp_path: Path) -> None:
    suite = SuiteResult([run_result(tmp_path)], tmp_path)
    case = ET.fromstring(report.junit_xml(suite)).find("testcase")
    assert case is not None
    message = case.find("failure").get("message")  # type: ignore[union-attr]
    assert f"invariant_violations: expected == 0, got 1 ({BROKEN})" in message
    assert f"result_not_stored: expected == 0, got 1 ({NOT_STORED})" in message
    assert "invariant_violations no-stuck-document:" in case.find("system-out").text  # type: ignore[union-attr, operator]
    summary = report.markdown_summary(suite)
    assert BROKEN in summary and NOT_STORED in summary
    assert "- invariant_violations no-stuck-document: after the run" in summary


def test_result_json_carries_each_invariant_and_report_html_shows_it(tmp_path: Path) -> None:
    result = run_result(tmp_path)
    report.write_scenario(result, history())
    document = json.loads((result.report_dir / "result.json").read_text())
    assert [
        {k: i[k] for k in ("name", "value", "expect", "held")} for i in document["invariants"]
    ] == [
        {"name": "no-stuck-document", "value": 2.0, "expect": 0, "held": False},
        {"name": "exports", "value": 1.0, "expect": {"min": 1, "max": 1}, "held": True},
    ]
    assert document["verdicts"]["invariant_violations"] == 1
    assert document["result_not_stored"] == [B]
    page = render_scenario(result.report_dir)
    assert 'data-verdict="invariant_violations"' in page and BROKEN in page
    assert 'data-verdict="result_not_stored"' in page and "holds PENDING" in page
    assert 'class="invariant" data-held="no"' in page and "between 1 and 1" in page


def test_assert_verdicts_says_which_invariant_broke() -> None:
    verdicts = check(history(), app_state=app_state())
    verdicts.explanations = app_lines(verdicts)
    try:
        assert_verdicts(verdicts, invariant_violations=0)
    except AssertionError as error:
        text = str(error)
    assert f"invariant_violations: expected == 0, got 1 ({BROKEN})" in text
    assert "explained: invariant_violations no-stuck-document:" in text


def test_unreadable_and_during_invariants_are_explained() -> None:
    state = AppState(
        invariants=[
            InvariantValue("rows", "sql", "SELECT x", 0, None, error="relation x does not exist"),
            InvariantValue("locks", "redis", "lock:*", 0, 0.0, during=True, samples=[0, 3, 1]),
        ]
    )
    lines = app_lines(check(history()[:2], app_state=state))
    assert lines[0].startswith("invariant_violations rows: could not be read")
    assert "relation x does not exist" in lines[0]
    assert lines[1].startswith(
        "invariant_violations locks: while faults were active 3 Redis key(s) matched 'lock:*',"
        " expected 0 (by the end: 0)"
    )
    assert "no attempt was interrupted" in lines[1]


def test_check_explained_judges_the_app_state_it_is_given() -> None:
    """chaos_env.verdicts() hands out check_explained's verdicts: they carry the app's state
    and its explanation lines when the caller measured it."""
    from celery_chaos.core.broker_state import BrokerState
    from celery_chaos.core.explain import check_explained, run_settings

    plan = scenario(name="doc-ingest")
    verdicts = check_explained(
        (history(), BrokerState(), {}), run_settings(plan), app_state=app_state()
    )
    assert verdicts.counts["invariant_violations"] == verdicts.counts["result_not_stored"] == 1
    assert any(line.startswith("result_not_stored #1 ") for line in verdicts.explanations)
