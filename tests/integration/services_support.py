"""What the services tests share on both placements: the scenarios (a real PostgreSQL, setup
steps, invariants), and the proof that nothing of a run outlives it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery_chaos.core.conclusion import NOT_RUNNABLE, ScenarioResult
from celery_chaos.core.scenario import Scenario, parse_scenario
from celery_chaos.placements.local.state import REPORT_COPY
from celery_chaos.run.runner import RunOptions, run_scenario
from celery_chaos.services import postgres


def _has_postgres() -> bool:
    try:
        postgres.bin_dir()
        return True
    except postgres.PostgresError:
        return False


# Debian's PostgreSQL server binaries (.ci/run installs them); without them a test cannot run.
needs_postgres = pytest.mark.skipif(not _has_postgres(), reason="no PostgreSQL binaries")
ROWS_TABLE = "CREATE TABLE rows (task_id text PRIMARY KEY, at timestamptz DEFAULT now())"
ROWS_OF_RUN = "SELECT count(*) FROM rows WHERE task_id IN ({task_ids})"


def scenario(name: str, **spec: Any) -> Scenario:
    data = {"name": name, "description": f"{name} (services test)", "timeout": 120}
    data |= {"workers": {"count": 1, "concurrency": 2}, **spec}
    return parse_scenario(data, f"{name}.yaml")


def postgres_rows(name: str, count: int = 3, setup: list | None = None, **spec: Any) -> Scenario:
    """A run's PostgreSQL, a table made by setup SQL, ``count`` tasks each inserting a row via
    ``DATABASE_URL``, and an invariant that reads how many rows this run's tasks wrote."""
    return scenario(
        name,
        services={"postgres": {}},
        setup=setup or [{"sql": ROWS_TABLE}],
        workload=[{"task": "sample_tasks.tasks.record_row", "count": count}],
        invariants=[{"name": "one-row-per-task", "sql": ROWS_OF_RUN, "expect": count}],
        **spec,
    )


def run(scene: Scenario, tmp_path: Path, backend: str = "local", **options: Any) -> ScenarioResult:
    lines: list[str] = []
    opts = RunOptions(backend=backend, report_dir=tmp_path, backend_options=options)
    result = run_scenario(scene, opts, tmp_path, log=lines.append)
    result.log_lines = lines  # type: ignore[attr-defined]
    return result


def invariant(result: ScenarioResult, name: str) -> dict[str, Any]:
    assert result.verdicts is not None, f"{result.status}: {result.reason}"
    found = {judged["name"]: judged for judged in result.verdicts.invariants}
    assert name in found, found
    return found[name]


def assert_not_runnable(result: ScenarioResult, *needles: str) -> None:
    assert result.status == NOT_RUNNABLE, (result.status, result.reason)
    for needle in needles:
        assert needle in (result.reason or ""), result.reason


def cluster_folders(report_dir: Path) -> list[str]:
    """Where the run's PostgreSQL clusters lived (the run's state record in its report)."""
    record = json.loads((report_dir / REPORT_COPY).read_text())
    return list(record.get("folders", []))


def postgres_processes_in(folders: list[str]) -> list[int]:
    """PIDs of live processes whose command line names one of ``folders`` (a postmaster's
    ``-D``): only this run's, so parallel tests never see each other's."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if any(folder in line for folder in folders):
            found.append(process.info["pid"])
    return found
