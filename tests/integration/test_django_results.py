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
    """Two ``add`` tasks per worker of the Django project (one worker unless ``count``); what
    the run read back."""
    name, count = spec.pop("name"), spec.pop("count", 1)
    data = {"name": name, "description": f"{name} (django-db test)", "timeout": 90}
    data["workers"] = {"count": count, "app": APP, "env": {"DJANGO_APP_DB": str(developer_db)}}
    data["workload"] = [{"task": "django_app.add", "args": [2, 3], "count": 2 * count}]
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
    # two workers: each migrates the results' table under a PostgreSQL advisory lock
    before = fingerprint(developer_db)
    result, history, seen = run(
        tmp_path, developer_db, name="django-db-postgres", services={"postgres": {}}, count=2
    )
    ready = [e for e in history if e["type"] == "worker_ready"]
    assert {e["result_backend_origin"] for e in ready} == {"harness"}, ready
    backend = ready[0]["result_backend"]
    assert backend.startswith("django-db+postgresql://chaos:***@127.0.0.1:"), backend
    assert f"   results: {backend} (the harness's, of the app's kind," in seen["log"]
    ids = dispatched(history)
    assert len(ids) == 4 and seen["states"] == {i: "SUCCESS" for i in ids}, seen["states"]
    assert result.verdicts.counts["ok"] == 4
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


def test_results_app_keeps_the_developers_database(tmp_path: Path, developer_db: Path):
    # ``results: app``: the developer's db.sqlite3 is used as configured; its table (an old,
    # incomplete schema) cannot take the results, so both completed tasks are result_not_stored
    result, history, seen = run(tmp_path, developer_db, name="django-db-app", results="app")
    ready = [e for e in history if e["type"] == "worker_ready"]
    assert {e["result_backend_origin"] for e in ready} == {"app"}, ready
    assert ready[0]["result_backend"] == f"django-db+sqlite:///{developer_db}"
    assert f"   results: django-db+sqlite:///{developer_db} (the app's own," in seen["log"]
    ids = dispatched(history)
    assert seen["states"] == {i: "PENDING" for i in ids} and len(ids) == 2, seen["states"]
    assert result.verdicts.counts["ok"] == 2  # the bodies ran; only storing failed
    assert result.verdicts.counts["result_not_stored"] == 2
    log = (result.report_dir / "logs" / "worker-w0.log").read_text()
    assert "Exception raised outside body" in log  # Celery's trace: the store raised


def test_the_router_sends_only_the_results_app_to_the_harness_alias() -> None:
    from celery_chaos.agent import results

    router = results.ResultsRouter()

    class Meta:
        def __init__(self, label: str) -> None:
            self._meta = type("M", (), {"app_label": label})

    assert router.db_for_write(Meta("django_celery_results")) == results.DJANGO_ALIAS
    assert router.db_for_read(Meta("documents")) is None
    assert router.allow_migrate(results.DJANGO_ALIAS, "django_celery_results") is True
    assert router.allow_migrate(results.DJANGO_ALIAS, "documents") is False
    assert router.allow_migrate("default", "django_celery_results") is False
    assert router.allow_migrate("default", "documents") is None
    assert results.kind_of("django-db+postgresql://u:p@h:5/app") == "django-db"
    assert results.django_database("postgresql://chaos:pw@127.0.0.1:5433/app") == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app",
        "USER": "chaos",
        "PASSWORD": "pw",
        "HOST": "127.0.0.1",
        "PORT": "5433",
    }
    assert results.django_database("sqlite:////run/x.sqlite3")["NAME"] == "/run/x.sqlite3"


@needs_postgres
def test_a_killed_then_redelivered_task_is_stored_in_the_runs_postgresql(
    tmp_path: Path, developer_db: Path
):
    # the pool process running task 0 is SIGKILLed at its checkpoint; acks_late +
    # reject_on_worker_lost redeliver it and attempt 2's SUCCESS is the row read back
    before = fingerprint(developer_db)
    result, history, seen = run(
        tmp_path,
        developer_db,
        name="django-db-killed",
        services={"postgres": {}},
        celery={"task_acks_late": True, "task_reject_on_worker_lost": True},
        workload=[{"task": "django_app.slow_add", "args": [2, 3], "count": 2}],
        faults=[{"kind": "kill_child", "when": {"task": 0, "checkpoint": "halfway"}}],
    )
    ends = [(e["task_id"], e["attempt"], e["state"]) for e in history if e["type"] == "attempt_end"]
    retried = [task for task, attempt, state in ends if attempt == 2 and state == "SUCCESS"]
    assert len(retried) == 1, ends
    ids = dispatched(history)
    assert seen["states"] == {i: "SUCCESS" for i in ids} and len(ids) == 2, seen["states"]
    counts = result.verdicts.counts
    assert counts["recovered"] == 1 and counts["ok"] == 1, counts
    assert counts["result_not_stored"] == 0
    assert fingerprint(developer_db) == before
