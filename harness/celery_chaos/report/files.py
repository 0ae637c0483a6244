"""Reports: result.json + history.jsonl per scenario, junit.xml + summary.md per run, console
tables, and the ``reports/latest`` link to the newest run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from rich.table import Table

from celery_chaos.core import history as h
from celery_chaos.core.checker import VERDICTS

if TYPE_CHECKING:
    from celery_chaos.run.runner import ScenarioResult, SuiteResult

STATUS_STYLE = {"passed": "green", "failed": "red", "not_runnable": "yellow", "error": "red"}


def describe_event(event: h.Event) -> str:
    """One readable line for live ``-v`` output."""
    fields = " ".join(
        f"{k}={v}" for k, v in event.items() if k not in ("type", "ts", "seq") and v is not None
    )
    return f"   {event['type']:<20} {fields}"[:240]


def result_document(result: ScenarioResult) -> dict[str, Any]:
    scenario = result.scenario
    document: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "status": result.status,
        "reason": result.reason,
        "backend": result.backend,
        "seed": result.seed,
        "end_reason": result.end_reason,
        "config": scenario.model_dump(mode="json"),
        "schedule": result.schedule,
        "timings": result.timings,
        "expectations": [vars(e) for e in result.expectations],
        "verdicts": dict.fromkeys(VERDICTS, 0),
    }
    if result.verdicts is not None:
        document.update(result.verdicts.as_dict())
    return document


def write_scenario(result: ScenarioResult, history: list[h.Event]) -> None:
    result.report_dir.mkdir(parents=True, exist_ok=True)
    (result.report_dir / "result.json").write_text(
        json.dumps(result_document(result), indent=2, default=str), encoding="utf-8"
    )
    h.write_jsonl(history, str(result.report_dir / "history.jsonl"))


def failure_message(result: ScenarioResult) -> str:
    """Why a scenario failed, naming the offending tasks/locks/effects."""
    if result.reason:
        return result.reason
    lines = []
    for unmet in result.unmet:
        line = f"{unmet.verdict}: expected {unmet.wanted}, got {unmet.actual}"
        offenders = result.verdicts.offenders(unmet.verdict) if result.verdicts else []
        if offenders:
            line += " (" + ", ".join(offenders[:10]) + ")"
        lines.append(line)
    return "; ".join(lines)


def junit_xml(suite: SuiteResult) -> str:
    root = ET.Element("testsuite", name="celery-chaos", tests=str(len(suite.results)))
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    for result in suite.results:
        case = ET.SubElement(
            root,
            "testcase",
            classname=f"celery-chaos.{result.backend}",
            name=result.scenario.name,
            time=str(result.timings.get("total", 0)),
        )
        if result.status == "failed":
            counts["failures"] += 1
            ET.SubElement(case, "failure", message=failure_message(result)).text = json.dumps(
                result.verdicts.counts if result.verdicts else {}
            )
        elif result.status == "error":
            counts["errors"] += 1
            ET.SubElement(case, "error", message=result.reason)
        elif result.status == "not_runnable":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=result.reason)
    for key, value in counts.items():
        root.set(key, str(value))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _verdict_cell(result: ScenarioResult) -> str:
    if result.verdicts is None:
        return "-"
    counts = result.verdicts.counts
    return ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "none"


def markdown_summary(suite: SuiteResult) -> str:
    """A Markdown table suitable for a CI job summary."""
    passed = sum(1 for r in suite.results if r.status == "passed")
    lines = [
        "## celery-chaos resilience run",
        "",
        f"{passed}/{len(suite.results)} scenarios met their expectations.",
        "",
        "| scenario | status | tasks | verdicts | expectation |",
        "|---|---|---|---|---|",
    ]
    for result in suite.results:
        tasks = len(result.verdicts.tasks) if result.verdicts else "-"
        expectation = "met" if result.status == "passed" else failure_message(result) or "-"
        lines.append(
            f"| {result.scenario.name} | {result.status} | {tasks} | {_verdict_cell(result)}"
            f" | {expectation.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def _point_latest(run_dir: Path) -> None:
    link = run_dir.parent / "latest"
    temporary = run_dir.parent / f".latest-{os.getpid()}"
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(run_dir.name)
        temporary.replace(link)
    except OSError:
        pass


def write_suite(suite: SuiteResult) -> None:
    (suite.run_dir / "junit.xml").write_text(junit_xml(suite), encoding="utf-8")
    (suite.run_dir / "summary.md").write_text(markdown_summary(suite), encoding="utf-8")
    _point_latest(suite.run_dir)


def scenario_table(result: ScenarioResult) -> Table:
    """The short per-scenario table ``celery-chaos run`` prints."""
    style = STATUS_STYLE.get(result.status, "white")
    title = f"{result.scenario.name}: [{style}]{result.status}[/{style}]"
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("verdict")
    table.add_column("count", justify="right")
    table.add_column("expected")
    table.add_column("met")
    expected = {e.verdict: e for e in result.expectations}
    counts = result.verdicts.counts if result.verdicts else {}
    for verdict in VERDICTS:
        rule = expected.get(verdict)
        if not counts.get(verdict) and rule is None:
            continue
        met = "" if rule is None else ("yes" if rule.met else "[red]NO[/red]")
        table.add_row(verdict, str(counts.get(verdict, 0)), rule.wanted if rule else "", met)
    return table


def scenario_footer(result: ScenarioResult) -> str:
    """The lines printed under a scenario's table: size, how it ended, where the report is."""
    tasks = len(result.verdicts.tasks) if result.verdicts else 0
    lines = [f"   {tasks} tasks, ended: {result.end_reason or '-'}, report: {result.report_dir}"]
    if result.status != "passed":
        lines.append(f"   why: {failure_message(result)}")
    return "\n".join(lines)
