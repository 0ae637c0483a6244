"""django-db (django-celery-results) with real workers of a real Django project
(tests/integration/django_app): the harness routes the results' table to the run's PostgreSQL
(``services.postgres``) or to an SQLite file in the run's folder, creates it there, and reads the
stored state back with SQL; the developer's own database is never opened. The docker worker
image has no Django, so these run on the local backend only."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.run import results_state
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.services_support import needs_postgres

pytest.importorskip("django_celery_results")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
APP = "tests.integration.django_app.celery:app"
SETTINGS = "tests.integration.django_app.settings"


@pytest.fixture
def developer_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The developer's db.sqlite3 with django-celery-results' table and an earlier FAILURE row
    (the doccano case); the harness process imports the app, so its settings module is set
    here and removed afterwards."""
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", SETTINGS)
    path = tmp_path / "developer" / "db.sqlite3"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE django_celery_results_taskresult (id integer PRIMARY KEY,"
            " task_id varchar(255) UNIQUE, status varchar(50))"
        )
        db.execute("INSERT INTO django_celery_results_taskresult VALUES (1, 'earlier', 'FAILURE')")
    return path


def fingerprint(path: Path) -> tuple[int, bytes]:
    return path.stat().st_mtime_ns, path.read_bytes()


def run(tmp_path: Path, developer_db: Path, **spec: Any) -> tuple[Any, list[dict], dict]:
    """Two ``add`` tasks on one worker of the Django project; what the run read back."""
    name = spec.pop("name")
    data = {"name": name, "description": f"{name} (django-db test)", "timeout": 90}
    data["workers"] = {"count": 1, "app": APP, "env": {"DJANGO_APP_DB": str(developer_db)}}
    data["workload"] = [{"task": "django_app.add", "args": [2, 3], "count": 2}]
    seen: dict[str, Any] = {}

    def read_back(backend: Any) -> None:
        history = backend.ledger.read_all()
        seen["states"], seen["masked"] = results_state.read_result_states(backend, history)

    lines: list[str] = []
    options = RunOptions(report_dir=tmp_path / "runs", on_finish=read_back)
    result = run_scenario(
        parse_scenario(data | spec, f"{name}.yaml"), options, tmp_path / "runs", lines.append
    )
    seen["log"] = "\n".join(lines)
    assert result.verdicts is not None, f"{result.status}: {result.reason}\n{seen['log']}"
    events = (result.report_dir / "history.jsonl").read_text().splitlines()
    return result, [json.loads(line) for line in events], seen


def dispatched(history: list[dict]) -> set[str]:
    return {e["task_id"] for e in history if e["type"] == "dispatch"}


@needs_postgres
def test_django_db_results_go_to_the_runs_postgresql(tmp_path: Path, developer_db: Path):
    before = fingerprint(developer_db)
    result, history, seen = run(
        tmp_path, developer_db, name="django-db-postgres", services={"postgres": {}}
    )
    ready = [e for e in history if e["type"] == "worker_ready"]
    assert {e["result_backend_origin"] for e in ready} == {"harness"}, ready
    backend = ready[0]["result_backend"]
    assert backend.startswith("django-db+postgresql://chaos:***@127.0.0.1:"), backend
    assert f"   results: {backend} (the harness's, of the app's kind," in seen["log"]
    ids = dispatched(history)
    assert len(ids) == 2 and seen["states"] == {i: "SUCCESS" for i in ids}, seen["states"]
    assert result.verdicts.counts["ok"] == 2
    assert result.verdicts.counts["result_not_stored"] == 0
    assert fingerprint(developer_db) == before  # never opened: same bytes, same mtime


def test_django_db_results_go_to_an_sqlite_file_in_the_run(tmp_path: Path, developer_db: Path):
    before = fingerprint(developer_db)
    result, history, seen = run(tmp_path, developer_db, name="django-db-sqlite")
    ready = [e for e in history if e["type"] == "worker_ready"]
    backend = ready[0]["result_backend"]
    assert backend.startswith("django-db+sqlite:///") and str(tmp_path) in backend, backend
    assert f"   results: {backend} (the harness's, of the app's kind," in seen["log"]
    ids = dispatched(history)
    assert seen["states"] == {i: "SUCCESS" for i in ids} and len(ids) == 2, seen["states"]
    stored = Path(backend.removeprefix("django-db+sqlite:///"))
    with sqlite3.connect(stored) as db:
        rows = db.execute("SELECT task_id, status FROM django_celery_results_taskresult").fetchall()
    assert sorted(rows) == sorted((i, "SUCCESS") for i in ids)
    assert result.verdicts.counts["result_not_stored"] == 0
    assert fingerprint(developer_db) == before
