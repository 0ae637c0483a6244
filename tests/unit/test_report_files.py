"""The suite's report files (pure): junit XML with one testcase per scenario that names the
offending tasks, and the markdown summary's table."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from celery_chaos.core.checker import BrokerState, check
from celery_chaos.core.conclusion import (
    ERROR,
    FAILED,
    NOT_RUNNABLE,
    PASSED,
    ScenarioResult,
    SuiteResult,
)
from celery_chaos.core.expectations import evaluate
from celery_chaos.report import files as report

from tests.unit.histories import TASK, completed, killed
from tests.unit.inline_scenario import scenario


def result_for(
    name: str,
    status: str,
    history: list[dict] | None = None,
    expect: dict | None = None,
    reason: str = "",
) -> ScenarioResult:
    plan = scenario(name=name, expect=expect or {})
    result = ScenarioResult(plan, status, 1, "local", Path("/tmp") / name, reason=reason)
    if history is not None:
        result.verdicts = check(history, BrokerState())
        result.expectations = evaluate(plan.expect, result.verdicts.counts)
    result.timings["total"] = 1.5
    return result


def suite() -> SuiteResult:
    lost = killed("lost-task-id", 1)
    return SuiteResult(
        [
            result_for("good", PASSED, completed("t0", 0), {"ok": 1}),
            result_for("bad", FAILED, [*completed("t0", 0), *lost], {"ok": 2, "lost": 0}),
            result_for("no-cgroup", NOT_RUNNABLE, reason="oom needs a writable memory cgroup"),
            result_for("broken", ERROR, reason="worker w0 exited during startup"),
        ],
        Path("/tmp/run"),
    )


def test_junit_has_one_testcase_per_scenario_and_names_offenders() -> None:
    root = ET.fromstring(report.junit_xml(suite()))

    assert root.tag == "testsuite"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "4",
        "1",
        "1",
        "1",
    )
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert list(cases) == ["good", "bad", "no-cgroup", "broken"]
    assert list(cases["good"]) == []
    failure = cases["bad"].find("failure")
    assert failure is not None
    message = failure.get("message")
    assert "ok: expected == 2, got 1" in message
    assert f"lost: expected == 0, got 1 ({TASK}[lost-task-id])" in message
    assert cases["no-cgroup"].find("skipped").get("message") == "oom needs a writable memory cgroup"
    assert cases["broken"].find("error").get("message") == "worker w0 exited during startup"
    assert cases["bad"].get("time") == "1.5"


def test_markdown_summary_has_a_row_per_scenario() -> None:
    text = report.markdown_summary(suite())

    assert "1/4 scenarios met their expectations." in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["good", "bad", "no-cgroup", "broken"]
    assert "lost-task-id" in text
