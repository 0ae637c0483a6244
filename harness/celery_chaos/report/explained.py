"""Where the explanation lines of :mod:`celery_chaos.core.explain` are made and shown: computed
once per scenario while its history is at hand (:func:`fill`), then printed under the console
table, in junit.xml, summary.md and report.html (which reads them from result.json)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from celery_chaos.core import history as h
from celery_chaos.core.conclusion import ScenarioResult
from celery_chaos.core.explain import explain, run_settings
from celery_chaos.report.mask import mask_text

CONSOLE_LINES = 10  # per scenario; result.json and report.html keep every line


def fill(result: ScenarioResult, history: list[h.Event]) -> None:
    """Set ``result.explanations`` from the verdicts, the history and the scenario's settings
    (never its expectations); a run without verdicts has none. Kept when already set (repro
    sets them from the app's own settings)."""
    if result.verdicts is None or result.explanations:
        return
    settings = run_settings(result.scenario, result.versions, history)
    result.explanations = [mask_text(line) for line in explain(result.verdicts, history, settings)]


def shown(result: ScenarioResult, limit: int = CONSOLE_LINES) -> list[str]:
    """The lines to print, at most ``limit``, then how many more the report holds."""
    lines = list(result.explanations[:limit])
    if len(result.explanations) > limit:
        more = len(result.explanations) - limit
        lines.append(f"... and {more} more explained in {result.report_dir / 'report.html'}")
    return lines


def console_text(result: ScenarioResult) -> str:
    """``   explained: <line>`` for each finding (empty when nothing needs explaining)."""
    return "\n".join(f"   explained: {line}" for line in shown(result))


def junit_out(case: ET.Element, result: ScenarioResult) -> None:
    """Every line into the test case's ``system-out`` (CI shows it beside the failure)."""
    if result.explanations:
        ET.SubElement(case, "system-out").text = "\n".join(result.explanations)


def markdown_section(results: list[ScenarioResult]) -> list[str]:
    """``### Why`` with each scenario's lines, for summary.md (empty when none)."""
    lines: list[str] = []
    for result in results:
        if result.explanations:
            lines += ["", f"**{result.scenario.name}**", ""]
            lines += [f"- {line}" for line in shown(result)]
    return (
        ["", "### Why (each finding, in terms of the settings and timings)", *lines]
        if lines
        else []
    )
