"""``celery-chaos report merge DIR...``: shard folders (of ``run --shard`` or ``matrix --shard``)
into one folder with one junit.xml, summary.md, HTML index and, for matrices, one matrix.

Merging reads only the files the shards wrote (scenario folders are copied as they are), so it
runs in a CI job that has none of the shards' environments.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

from celery_chaos.report import files, html
from celery_chaos.tools.matrix import table

JUNIT_COUNTS = ("tests", "failures", "errors", "skipped")


class MergeError(ValueError):
    """Shard folders that cannot be merged; the message names the folder and why."""


def scenario_dirs(run_dir: Path) -> list[Path]:
    return sorted(p.parent for p in run_dir.glob("*/result.json"))


def recorded_durations(run_dir: Path) -> dict[str, float]:
    """Seconds per scenario (per ``scenario@column`` in a matrix) from a previous run's files,
    for balancing shards."""
    found: dict[str, float] = {}
    if (run_dir / table.MATRIX_JSON).exists():
        for cell in table.read(run_dir)["cells"]:
            if cell.get("seconds") is not None:
                found[f"{cell['scenario']}@{cell['column']}"] = float(cell["seconds"])
        return found
    for folder in scenario_dirs(run_dir):
        document = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        seconds = (document.get("timings") or {}).get("total")
        if seconds is not None:
            found[document.get("scenario") or folder.name] = float(seconds)
    return found


def previous_durations(report_dir: Path) -> dict[str, float]:
    """Seconds per scenario of the last run written to ``report_dir`` (its ``latest`` link),
    empty when there is none or it cannot be read: only an ordering hint for ``run``."""
    latest = report_dir / "latest"
    try:
        return recorded_durations(latest) if latest.is_dir() else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _copy_scenarios(sources: list[Path], out: Path) -> list[Path]:
    copied = []
    for source in sources:
        for folder in scenario_dirs(source):
            target = out / folder.name
            if target.exists():
                raise MergeError(f"{folder}: scenario {folder.name} is in two shard folders")
            shutil.copytree(folder, target, symlinks=True)
            copied.append(target)
    return copied


def merged_junit(sources: list[Path]) -> str:
    root = ET.Element("testsuite", name="celery-chaos")
    totals = dict.fromkeys(JUNIT_COUNTS, 0)
    for source in sources:
        path = source / "junit.xml"
        if not path.exists():
            continue
        suite = ET.parse(path).getroot()
        for key in JUNIT_COUNTS:
            totals[key] += int(suite.get(key, 0))
        root.extend(suite.findall("testcase"))
    for key, value in totals.items():
        root.set(key, str(value))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def merged_summary(sources: list[Path]) -> str:
    """The shards' summary tables as one (rows in shard order)."""
    header, rows = [], []
    for source in sources:
        path = source / "summary.md"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        table_lines = [line for line in lines if line.startswith("|")]
        header = header or table_lines[:2]
        rows += table_lines[2:]
    passed = sum(1 for row in rows if row.split("|")[2].strip() == "passed")
    lines = [
        "## celery-chaos resilience run",
        "",
        f"{passed}/{len(rows)} scenarios met their expectations.",
        "",
        *header,
        *rows,
    ]
    return "\n".join(lines) + "\n"


def merge_runs(sources: list[Path], out: Path) -> list[Path]:
    """Run folders -> one run folder (scenario folders, junit.xml, summary.md, index.html)."""
    out.mkdir(parents=True, exist_ok=True)
    copied = _copy_scenarios(sources, out)
    (out / "junit.xml").write_text(merged_junit(sources), encoding="utf-8")
    (out / "summary.md").write_text(merged_summary(sources), encoding="utf-8")
    files._write_html(html.write_index_html, out, copied)
    return copied


def merge_matrices(sources: list[Path], out: Path) -> dict:
    """Matrix shard folders -> one matrix folder; columns in first-seen order."""
    matrices = [table.read(source) for source in sources]
    columns: dict[str, dict] = {}
    for matrix in matrices:
        for column in matrix["columns"]:
            columns.setdefault(column["label"], column)
    merged = table.new_matrix(list(columns.values()), matrices[0]["baseline"])
    merged["cells"] = [cell for matrix in matrices for cell in matrix["cells"]]
    merged["seconds"] = max(matrix.get("seconds") or 0 for matrix in matrices)
    for label in columns:
        merge_runs([s / label for s in sources if (s / label).is_dir()], out / label)
    table.write(merged, out)
    table.write_index(merged, out)
    return merged


def merge(sources: list[Path], out: Path) -> dict | list[Path]:
    """Matrix shards or run shards (not a mix) into ``out`` (which must not exist yet)."""
    for source in sources:
        if not source.is_dir():
            raise MergeError(f"{source}: not a folder")
    kinds = {(source / table.MATRIX_JSON).exists() for source in sources}
    if len(kinds) > 1:
        raise MergeError("report merge: give matrix shard folders or run shard folders, not both")
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"--out: {out}: exists and is not empty")
    return merge_matrices(sources, out) if kinds == {True} else merge_runs(sources, out)


def merged_exit_code(out: Path) -> int:
    """The merged folder's exit code, from the statuses its files carry."""
    from celery_chaos.core.conclusion import EXIT_OK, EXIT_PRECEDENCE

    if (out / table.MATRIX_JSON).exists():
        return table.exit_code(table.read(out))
    statuses = {
        json.loads((folder / "result.json").read_text(encoding="utf-8")).get("status")
        for folder in scenario_dirs(out)
    }
    return next((code for status, code in EXIT_PRECEDENCE if status in statuses), EXIT_OK)
