"""The matrix: scenarios down, version sets across, each cell a run's verdict counts and status.

Kept as plain JSON-able data (``matrix.json``) so shard folders merge by reading files. A cell
*differs* when its status or counts are not the baseline column's; it *fails* when its run did
not meet the scenario's expectation for that column's versions (``expect_when``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from celery_chaos.core.conclusion import EXIT_OK, EXIT_PRECEDENCE, PASSED

MATRIX_JSON, MATRIX_MD = "matrix.json", "matrix.md"


def cell_from_result(result: Any, column: str, matrix_dir: Path) -> dict[str, Any]:
    """One cell from a :class:`ScenarioResult` of a column's run."""
    counts = result.verdicts.counts if result.verdicts is not None else {}
    return {
        "scenario": result.scenario.name,
        "column": column,
        "status": result.status,
        "counts": {key: value for key, value in counts.items() if value},
        "reason": result.reason,
        "versions": result.versions,
        "seconds": result.timings.get("total"),
        "report": (result.report_dir / "report.html").relative_to(matrix_dir).as_posix(),
    }


def new_matrix(columns: list[dict[str, Any]], baseline: str | None = None) -> dict[str, Any]:
    return {"columns": columns, "baseline": baseline or columns[0]["label"], "cells": []}


def cell(matrix: dict[str, Any], scenario: str, column: str) -> dict[str, Any] | None:
    return next(
        (c for c in matrix["cells"] if c["scenario"] == scenario and c["column"] == column), None
    )


def scenarios(matrix: dict[str, Any]) -> list[str]:
    """Scenario names in first-seen order."""
    return list(dict.fromkeys(c["scenario"] for c in matrix["cells"]))


def differs(matrix: dict[str, Any], found: dict[str, Any]) -> bool:
    base = cell(matrix, found["scenario"], matrix["baseline"])
    if base is None or base is found:
        return False
    return (base["status"], base["counts"]) != (found["status"], found["counts"])


REASON_CHARS = 160  # a cell quotes at most this much of its run's reason


def cell_reason(found: dict[str, Any]) -> str:
    """Why a cell that counted nothing did not run: the first line of its run's reason (e.g.
    ``No module named 'gevent'``), cut to :data:`REASON_CHARS`; matrix.json keeps it whole."""
    lines = str(found.get("reason") or "").strip().splitlines()
    reason = " ".join(lines[0].split()) if lines else ""
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 3] + "..."


def cell_text(found: dict[str, Any] | None) -> str:
    """``status: counts``; a cell with no counts whose run gave a reason (an error, a scenario
    not runnable there) shows that reason instead of ``none``."""
    if found is None:
        return "-"
    counts = ", ".join(f"{key}={value}" for key, value in found["counts"].items())
    if not counts and found["status"] != PASSED:
        counts = cell_reason(found)
    return f"{found['status']}: {counts or 'none'}"


def exit_code(matrix: dict[str, Any]) -> int:
    statuses = {c["status"] for c in matrix["cells"]}
    return next((code for status, code in EXIT_PRECEDENCE if status in statuses), EXIT_OK)


def rows(matrix: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per scenario, per column: the cell's text, status, report link and whether it differs
    from the baseline (what the console, matrix.md and the HTML index all draw)."""
    labels = [column["label"] for column in matrix["columns"]]
    table = []
    for name in scenarios(matrix):
        line = []
        for label in labels:
            found = cell(matrix, name, label)
            line.append(
                {
                    "text": cell_text(found),
                    "changed": bool(found and differs(matrix, found)),
                    "status": found["status"] if found else "-",
                    "counts": list((found or {}).get("counts", {}).items()),
                    "href": found["report"] if found else None,
                    "reason": cell_reason(found) if found and found["status"] != PASSED else "",
                }
            )
        table.append((name, line))
    return table


def console_table(matrix: dict[str, Any]) -> Table:
    """The console table: a difference from the baseline in bold yellow, a failure in red."""
    table = Table(title=f"matrix (baseline: {matrix['baseline']})", title_justify="left")
    table.add_column("scenario")
    for column in matrix["columns"]:
        table.add_column(column["label"])
    for name, line in rows(matrix):
        styled = []
        for entry in line:
            text, changed = entry["text"], entry["changed"]
            style = "red" if entry["status"] not in (PASSED, "-") else ""
            style = f"{style} bold yellow".strip() if changed else style
            styled.append(f"[{style}]{text}{' *' if changed else ''}[/]" if style else text)
        table.add_row(name, *styled)
    return table


def markdown(matrix: dict[str, Any]) -> str:
    """``matrix.md`` for a CI job summary: a changed cell in bold with ``*``."""
    labels = [column["label"] for column in matrix["columns"]]
    failing = sum(1 for c in matrix["cells"] if c["status"] != PASSED)
    lines = [
        "## celery-chaos version matrix",
        "",
        f"Baseline column: `{matrix['baseline']}`; **bold \\*** = differs from it."
        f" {len(matrix['cells']) - failing}/{len(matrix['cells'])} cells met their expectation.",
        "",
        "| scenario | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for name, line in rows(matrix):
        texts = [f"**{e['text']} \\***" if e["changed"] else e["text"] for e in line]
        lines.append(f"| {name} | " + " | ".join(t.replace("|", "/") for t in texts) + " |")
    return "\n".join(lines) + "\n"


def write(matrix: dict[str, Any], directory: Path) -> None:
    (directory / MATRIX_JSON).write_text(json.dumps(matrix, indent=2, default=str), "utf-8")
    (directory / MATRIX_MD).write_text(markdown(matrix), encoding="utf-8")


def read(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MATRIX_JSON).read_text(encoding="utf-8"))


def write_index(matrix: dict[str, Any], directory: Path) -> None:
    """The HTML index of a matrix folder: the same table, each cell linking to its report."""
    from celery_chaos.report import files, html

    columns = [column["label"] for column in matrix["columns"]]
    files._write_html(html.write_matrix_index, directory, columns, matrix["baseline"], rows(matrix))
