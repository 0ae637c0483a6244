"""services.postgres / services.redis, setup steps and invariants on the local placement, with a
real PostgreSQL (Debian's binaries, initdb in the run's folder) and real workers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from celery_chaos.core.conclusion import NOT_RUNNABLE
from celery_chaos.services import postgres

from tests.integration import services_support as support
from tests.integration.services_support import needs_postgres

pytestmark = pytest.mark.timeout(240)


@needs_postgres
def test_tasks_write_rows_to_the_runs_postgres_and_the_invariant_reads_them(tmp_path: Path):
    result = support.run(support.postgres_rows("pg-rows-local"), tmp_path)
    judged = support.invariant(result, "one-row-per-task")
    assert judged["value"] == 3 and judged["held"], judged
    assert "setup[0] sql: ok" in "\n".join(result.log_lines)  # type: ignore[attr-defined]
    logs = result.report_dir / "logs"
    assert "database system is ready" in (logs / "postgres.log").read_text()
    folders = support.cluster_folders(result.report_dir)
    assert folders and not support.postgres_processes_in(folders)  # stopped with the run
    assert not [f for f in folders if Path(f).exists()]  # its cluster removed


@needs_postgres
def test_a_broken_invariant_is_a_violation_with_its_value(tmp_path: Path):
    scene = support.postgres_rows("pg-rows-broken", count=2)
    data = scene.model_dump(exclude_none=True, exclude_unset=True)
    data["invariants"] = [
        {"name": "no-rows", "sql": "SELECT count(*) FROM rows", "expect": 0},
        {"name": "unreadable", "sql": "SELECT count(*) FROM nowhere", "expect": 0},
    ]
    result = support.run(support.scenario(**data), tmp_path)
    judged = support.invariant(result, "no-rows")
    assert judged["value"] == 2 and not judged["held"], judged
    unreadable = support.invariant(result, "unreadable")  # broken, never held
    assert unreadable["value"] is None and not unreadable["held"], unreadable
    assert 'relation "nowhere" does not exist' in unreadable["error"]
    assert result.verdicts is not None
    assert result.verdicts.counts["invariant_violations"] == 2


@needs_postgres
def test_a_failing_setup_step_is_not_runnable_with_its_output(tmp_path: Path):
    scene = support.scenario(
        "setup-fails",
        services={"postgres": {}},
        setup=[
            {"sql": support.ROWS_TABLE},
            {"run": "echo preparing; echo 'migration 0002 exploded' >&2; exit 3"},
        ],
        workload=[{"task": "sample_tasks.tasks.record_row"}],
    )
    result = support.run(scene, tmp_path)
    support.assert_not_runnable(result, "setup[1].run", "exit 3", "migration 0002 exploded")
    assert not list((result.report_dir / "logs").glob("worker-*.log"))  # no worker started


def test_a_setup_step_that_outlives_its_timeout_is_stopped_and_not_runnable(tmp_path: Path):
    scene = support.scenario(
        "setup-hangs",
        setup=[{"run": "echo started; sleep 60", "timeout": 1}],
        workload=[{"task": "sample_tasks.tasks.work"}],
    )
    began = time.monotonic()
    result = support.run(scene, tmp_path)
    support.assert_not_runnable(result, "setup[0].run", "timed out after 1s", "started")
    assert time.monotonic() - began < 20  # stopped at its timeout, not at the sleep's end


@needs_postgres
def test_failing_setup_sql_is_not_runnable_with_psqls_error(tmp_path: Path):
    scene = support.scenario(
        "setup-sql-fails",
        services={"postgres": {}},
        setup=[{"sql": "CREATE TABLE rows (task_id text); INSERT INTO nowhere VALUES (1)"}],
        workload=[{"task": "sample_tasks.tasks.record_row"}],
    )
    result = support.run(scene, tmp_path)
    support.assert_not_runnable(result, "setup[0].sql failed", 'relation "nowhere" does not exist')


def test_a_service_that_cannot_start_is_not_runnable_within_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    empty = tmp_path / "no-postgres-here"
    empty.mkdir()
    monkeypatch.setenv(postgres.BIN_ENV, str(empty))  # initdb does not exist there
    began = time.monotonic()
    result = support.run(support.postgres_rows("pg-missing"), tmp_path)
    took = time.monotonic() - began
    support.assert_not_runnable(result, "services.postgres", "initdb")
    assert took < 15, took  # the run gives up at once, not at a readiness timeout


def test_run_steps_and_workers_share_a_working_directory_in_the_run_folder(tmp_path: Path):
    """A ``run:`` step writes a file to a relative path; tasks write more; a ``path``
    invariant counts them all under ``<run folder>/work``, none in the launching cwd."""
    scene = support.scenario(
        "path-files",
        setup=[{"run": "mkdir -p out && echo seed > out/setup.txt"}],
        workload=[{"task": "sample_tasks.tasks.write_file", "count": 3}],
        invariants=[{"name": "files", "path": "out/*.txt", "expect": 4}],
    )
    result = support.run(scene, tmp_path)
    judged = support.invariant(result, "files")
    assert judged["value"] == 4 and judged["held"], judged
    written = sorted(p.name for p in (result.report_dir / "work" / "out").iterdir())
    assert len(written) == 4 and "setup.txt" in written
    assert not Path("out").exists()  # nothing landed in the developer's tree


def test_the_apps_own_redis_is_reached_by_setup_and_counted_by_an_invariant(tmp_path: Path):
    script = "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL']).set('lock:doc:1', 1)"
    scene = support.scenario(
        "app-redis",
        services={"redis": {}},
        setup=[{"run": f'python -c "{script}"'}],
        workload=[{"task": "sample_tasks.tasks.work", "args": [0.1, 1]}],
        invariants=[{"name": "locks", "redis": "lock:doc:*", "expect": 0, "during": True}],
    )
    result = support.run(scene, tmp_path)
    judged = support.invariant(result, "locks")
    assert judged["value"] == 1 and not judged["held"], judged
    assert result.status != NOT_RUNNABLE


HARNESS_DEATH_SCENARIO = """
name: pg-harness-dies
description: a run with its own PostgreSQL, killed while a task runs
services: {postgres: {}}
setup: [{sql: "CREATE TABLE rows (task_id text PRIMARY KEY)"}]
workload:
  - {task: sample_tasks.tasks.work, kwargs: {seconds: 30, steps: 30}}
timeout: 60
"""


@needs_postgres
def test_a_killed_harness_leaves_no_postgres_behind(tmp_path: Path):
    """SIGKILL of the harness mid-run: the postmaster (PDEATHSIG, its backends follow it) and
    its cluster folder (the watchdog) are gone within a deadline, with no cleanup command."""
    import subprocess
    import sys

    import psutil
    from celery_chaos.placements.local.state import STATE_DIR_ENV, RunState

    from tests.integration.scenario_support import wait_for_line

    (tmp_path / "pg.yaml").write_text(HARNESS_DEATH_SCENARIO)
    state_dir = tmp_path / "state"
    harness = subprocess.Popen(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(tmp_path / "pg.yaml"),
         "--report-dir", str(tmp_path / "reports"), "-v"],
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=os.environ | {STATE_DIR_ENV: str(state_dir)},
    )  # fmt: skip
    try:
        wait_for_line(harness, "attempt_start")
        (live,) = state_dir.glob("*.json")
        state = RunState.load(live)
        (postmaster,) = [g.leader for g in state.groups if g.role == "postgres"]
        assert postmaster.alive() and state.folders
        harness.kill()
        harness.wait(timeout=10)
    finally:
        if harness.poll() is None:
            harness.kill()

    def left() -> list[str]:
        found = [f"folder {f}" for f in state.folders if Path(f).exists()]
        found += [f"postgres {pid}" for pid in support.postgres_processes_in(state.folders)]
        found += [
            f"{p.pid}" for p in psutil.process_iter(["cmdline"]) if state.run_id in str(p.info)
        ]
        return found + (["postmaster"] if postmaster.alive() else [])

    end = time.monotonic() + 20
    while left() and time.monotonic() < end:
        time.sleep(0.1)
    assert not left()


def test_a_during_invariant_catches_a_lock_that_only_exists_while_a_task_runs(tmp_path: Path):
    """The lock is gone at the end (final value 0) but the samples taken while the workload ran
    saw it: the invariant is broken, with its worst value."""
    scene = support.scenario(
        "during-lock",
        services={"redis": {}},
        workload=[{"task": "sample_tasks.tasks.hold_redis_key", "kwargs": {"seconds": 2.0}}],
        invariants=[
            {"name": "no-lock-ever", "redis": "lock:doc:*", "expect": 0, "during": True},
            {"name": "no-lock-at-end", "redis": "lock:doc:*", "expect": 0},
        ],
    )
    result = support.run(scene, tmp_path)
    during = support.invariant(result, "no-lock-ever")
    assert during["value"] == 0 and during["worst"] == 1 and not during["held"], during
    assert support.invariant(result, "no-lock-at-end")["held"]
