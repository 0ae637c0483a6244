"""Run a matrix: every selected (scenario, version set) cell, workers from that set's env.

Layout of one matrix run: ``REPORT_DIR/<timestamp>/`` with ``matrix.json``, ``matrix.md``,
``index.html`` (the table, cells linking to their reports) and one folder per version set, each
a normal run folder (scenario folders, junit.xml, summary.md, index.html).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from celery_chaos.core.conclusion import SuiteResult
from celery_chaos.core.scenario import Scenario
from celery_chaos.core.shards import select
from celery_chaos.report import files as report
from celery_chaos.report import html
from celery_chaos.run.runner import RunOptions, new_run_dir, run_scenario
from celery_chaos.tools.matrix import envs, table
from celery_chaos.tools.matrix.table import write_index
from celery_chaos.tools.matrix.version_sets import VersionSet


@dataclass
class MatrixOptions:
    run: RunOptions
    version_sets: list[VersionSet]
    sources: envs.Sources = envs.Sources()
    env_root: Path | None = None
    baseline: str | None = None
    jobs: int = 1
    shard: tuple[int, int] | None = None
    durations: dict[str, float] | None = None


def cell_key(scenario: str, column: str) -> str:
    """How a cell is named for sharding and recorded durations."""
    return f"{scenario}@{column}"


def _cells(scenarios: list[Scenario], options: MatrixOptions) -> list[tuple[Scenario, VersionSet]]:
    cells = [(s, v) for v in options.version_sets for s in scenarios]
    if options.shard is None:
        return cells
    return select(
        cells, options.shard, lambda c: cell_key(c[0].name, c[1].label), options.durations
    )


def _columns(options: MatrixOptions, built: dict[str, envs.WorkerEnv]) -> list[dict[str, Any]]:
    return [
        {
            "label": v.label,
            "pins": v.pins,
            "requirements": v.requirements(),
            "env_seconds": built[v.label].build_seconds if v.label in built else None,
            "env_cached": built[v.label].cached if v.label in built else None,
        }
        for v in options.version_sets
    ]


def _build_envs(
    needed: list[VersionSet], options: MatrixOptions, log: Callable[[str], None]
) -> dict[str, envs.WorkerEnv]:
    """One environment per version set this shard needs (cached ones are reused)."""
    built: dict[str, envs.WorkerEnv] = {}
    for version_set in {v.label: v for v in needed}.values():
        env = envs.build_env(version_set, options.sources, options.env_root)
        built[version_set.label] = env
        state = "cached" if env.cached else "built"
        log(f"env {version_set.label}: {state} in {env.build_seconds}s")
    return built


def run_matrix(
    scenarios: list[Scenario], options: MatrixOptions, log: Callable[[str], None] = print
) -> tuple[dict[str, Any], Path]:
    """Build the needed envs, run the cells (``jobs`` at a time), write the matrix files."""
    began = time.monotonic()
    matrix_dir = new_run_dir(options.run.report_dir)
    cells = _cells(scenarios, options)
    built = _build_envs([v for _, v in cells], options, log)
    agent_path = str(envs.stage_agent(matrix_dir / ".agent"))

    def run_cell(item: tuple[Scenario, VersionSet]) -> Any:
        scenario, version_set = item
        backend_options = options.run.backend_options | {
            "python": built[version_set.label].python,
            "agent_path": agent_path,
        }
        run = replace(options.run, backend_options=backend_options)
        column_log = lambda line: log(f"[{version_set.label}] {line}")  # noqa: E731
        return version_set, run_scenario(scenario, run, matrix_dir / version_set.label, column_log)

    if options.jobs <= 1:  # in this thread: Ctrl-C reaches the running backend's cleanup
        finished = [run_cell(item) for item in cells]
    else:
        with ThreadPoolExecutor(max_workers=options.jobs) as pool:
            finished = list(pool.map(run_cell, cells))
    matrix = table.new_matrix(_columns(options, built), options.baseline)
    matrix["cells"] = [table.cell_from_result(r, v.label, matrix_dir) for v, r in finished]
    matrix["seconds"] = round(time.monotonic() - began, 3)
    _write_columns(finished, matrix_dir)
    table.write(matrix, matrix_dir)
    write_index(matrix, matrix_dir)
    report._point_latest(matrix_dir)  # REPORT_DIR/latest/matrix.md for a CI job summary
    return matrix, matrix_dir


def _write_columns(finished: list[tuple[VersionSet, Any]], matrix_dir: Path) -> None:
    """Each version set's folder is a normal run folder: junit.xml, summary.md, index.html."""
    for label in dict.fromkeys(v.label for v, _ in finished):
        results = [r for v, r in finished if v.label == label]
        suite = SuiteResult(results, matrix_dir / label)
        (suite.run_dir / "junit.xml").write_text(report.junit_xml(suite), encoding="utf-8")
        (suite.run_dir / "summary.md").write_text(report.markdown_summary(suite), encoding="utf-8")
        report._write_html(html.write_index_html, suite.run_dir, [r.report_dir for r in results])
