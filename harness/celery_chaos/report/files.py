"""Reports: result.json + history.jsonl per scenario, junit.xml + summary.md per run, console
tables, and the ``reports/latest`` link to the newest run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from rich.table import Table
from rich.text import Text

from celery_chaos.core import history as h
from celery_chaos.core.checker import VERDICTS
from celery_chaos.core.conclusion import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    NOT_RUNNABLE,
    PASSED,
    SKIPPED,
    ScenarioResult,
    SuiteResult,
    failure_message,
)
from celery_chaos.report import explained, html
from celery_chaos.report.mask import mask_event, mask_report, mask_text
from celery_chaos.report.messages import counts_text

STATUS_STYLE = {
    PASSED: "green",
    FAILED: "red",
    INCONCLUSIVE: "magenta",
    NOT_RUNNABLE: "yellow",
    ERROR: "red",
    SKIPPED: "yellow",
}


def describe_event(event: h.Event) -> str:
    """One readable line for live ``-v`` output."""
    fields = " ".join(
        f"{k}={v}" for k, v in event.items() if k not in ("type", "ts", "seq") and v is not None
    )
    return mask_text(f"   {event['type']:<20} {fields}")[:240]


def result_document(result: ScenarioResult, **extra: Any) -> dict[str, Any]:
    """The one result.json format (scenario runs and ``chaos_env`` tests; ``extra`` adds the
    test's own fields), secrets masked."""
    scenario = result.scenario
    document: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "status": result.status,
        "reason": result.reason,
        "backend": result.backend,
        "seed": result.seed,
        "versions": result.versions,
        "end_reason": result.end_reason,
        "config": scenario.model_dump(mode="json"),
        "schedule": result.schedule,
        "timings": result.timings,
        "expectations": [vars(e) for e in result.expectations],
        "explanations": result.explanations,
        "strict": result.strict,
        "unclaimed": result.unclaimed,  # anomaly verdicts no expectation names (README: Strict)
        "verdicts": dict.fromkeys(VERDICTS, 0),
    }
    if result.verdicts is not None:
        document.update(result.verdicts.as_dict())
    return mask_report(document | extra)


def write_scenario(result: ScenarioResult, history: list[h.Event], **extra: Any) -> None:
    """``result.json`` and ``history.jsonl`` into the result's folder, secrets masked."""
    result.report_dir.mkdir(parents=True, exist_ok=True)
    explained.fill(result, history)
    extra = {"worker_commands": worker_commands(history), **extra}
    (result.report_dir / "result.json").write_text(
        json.dumps(result_document(result, **extra), indent=2, default=str), encoding="utf-8"
    )
    h.write_jsonl(map(mask_event, history), str(result.report_dir / "history.jsonl"))
    _write_html(html.write_scenario_html, result.report_dir)


def worker_commands(history: list[h.Event]) -> dict[str, list[str]]:
    """Each worker's exact command line, from its ``worker_started`` event: what a team compares
    with its own (docs/worker-command.md)."""
    return {
        e["worker"]: e["argv"]
        for e in history
        if e["type"] == h.WORKER_STARTED and e.get("argv") is not None
    }


def _write_html(writer: Any, *args: Any) -> None:
    """The HTML pages are drawn from the files just written; a drawing bug is logged, never
    allowed to hide a verdict that result.json, junit.xml and summary.md already carry."""
    try:
        writer(*args)
    except Exception as error:  # noqa: BLE001 - any rendering failure, reported and survived
        print(f"celery-chaos: HTML report not written: {type(error).__name__}: {error}")


def why(result: ScenarioResult) -> str:
    """:func:`failure_message`, masked: it quotes reasons that may carry URLs."""
    return mask_text(failure_message(result))


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
        if result.status == FAILED:
            counts["failures"] += 1
            ET.SubElement(case, "failure", message=why(result)).text = json.dumps(
                result.verdicts.counts if result.verdicts else {}
            )
        elif result.status in (ERROR, INCONCLUSIVE):  # a run that proved nothing is no pass
            counts["errors"] += 1
            message = why(result)
            if result.status == INCONCLUSIVE:
                message = f"inconclusive: {message}"
            ET.SubElement(case, "error", message=message, type=result.status)
        elif result.status in (NOT_RUNNABLE, SKIPPED):
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=why(result))
        explained.junit_out(case, result)
    for key, value in counts.items():
        root.set(key, str(value))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def markdown_summary(suite: SuiteResult) -> str:
    """A Markdown table suitable for a CI job summary."""
    lines = [
        "## celery-chaos resilience run",
        "",
        f"{suite.passed}/{len(suite.results)} scenarios met their expectations.",
        "",
        "| scenario | status | tasks | verdicts | expectation | report |",
        "|---|---|---|---|---|---|",
    ]
    for result in suite.results:
        tasks = len(result.verdicts.tasks) if result.verdicts else "-"
        expectation = "met" if result.status == PASSED else why(result) or "-"
        lines.append(
            f"| {result.scenario.name} | {result.status} | {tasks} | {counts_text(result.verdicts)}"
            f" | {expectation.replace('|', '/')} | [report]({result.scenario.name}/report.html) |"
        )
    lines += explained.markdown_section(suite.results)
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
    _write_html(html.write_index_html, suite.run_dir, [r.report_dir for r in suite.results])
    _point_latest(suite.run_dir)


def scenario_title(result: ScenarioResult) -> Text:
    """``name: status``, printed as a line of its own above :func:`scenario_table` (as the
    table's title it wrapped to the table's width in a CI log)."""
    style = STATUS_STYLE.get(result.status, "white")
    return Text.assemble(f"{result.scenario.name}: ", (result.status, style))


def scenario_table(result: ScenarioResult) -> Table:
    """The short per-scenario table ``celery-chaos run`` prints (under its title line)."""
    table = Table(show_edge=False)
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
        if rule is None and result.strict and verdict in result.unclaimed:
            met = "[red]unclaimed[/red]"
        table.add_row(verdict, str(counts.get(verdict, 0)), rule.wanted if rule else "", met)
    return table


def scenario_footer(result: ScenarioResult) -> str:
    """The lines printed under a scenario's table: size, how it ended, where the report is."""
    tasks = len(result.verdicts.tasks) if result.verdicts else 0
    page = result.report_dir / "report.html"
    lines = [f"   {tasks} tasks, ended: {result.end_reason or '-'}, report: {page}"]
    if result.status != PASSED:
        lines.append(f"   why: {why(result)}")
    return "\n".join(lines + ([explained.console_text(result)] if result.explanations else []))
