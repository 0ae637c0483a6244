"""pytest-django with ``chaos_env``: the workers are other processes, so what a test writes
reaches them only when it is committed in the database *they* open.

A real pytest run (a subprocess, on a small test file) of the Django project in
tests/integration/django_app with pytest-django (``DJANGO_SETTINGS_MODULE`` from its ini): the
app's celery module sets no default, so the ini is what configures the harness's import and the
workers. The settings module (``settings_pytest``) makes the database's NAME its TEST NAME, so the
workers open the test database pytest-django creates (an SQLite file here). A row written under
``transactional_db`` is found by the worker's ``@shared_task``; the same row under ``db``
(pytest-django's transaction, never committed) is not: the task raises, naming the test database
it looked in (docs/how-to/pytest.md, "Django: sharing data with workers")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytest_django")
pytest.importorskip("django_celery_results")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]

INI = """[pytest]
DJANGO_SETTINGS_MODULE = tests.integration.django_app.settings_pytest
"""
TESTS = '''
import pytest
from celery_chaos.testing import assert_verdicts
from django.db import connection

APP = "tests.integration.django_app.celery_nodefault:app"
chaos = pytest.mark.chaos(workers={"app": APP, "count": 1, "concurrency": 1})


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The table the workers read, created (and committed) once in the test database."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE marks (name varchar(50) PRIMARY KEY)")


def write_mark(name):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO marks VALUES (%s)", [name])


def failures(chaos_env):
    return [e["exc"] for e in chaos_env.history() if e["type"] == "task_failure"]


@chaos
def test_transactional_db_row_is_seen_by_the_worker(transactional_db, chaos_env):
    write_mark("committed")
    chaos_env.dispatch("django_nodefault.find_mark", args=("committed",))
    assert chaos_env.wait_quiescent(timeout=60)
    assert failures(chaos_env) == []
    assert_verdicts(chaos_env.verdicts(), ok=1, failed=0)
    print("TEST DATABASE", connection.settings_dict["NAME"])


@chaos
def test_db_row_is_invisible_to_the_worker(db, chaos_env):
    write_mark("uncommitted")
    chaos_env.dispatch("django_nodefault.find_mark", args=("uncommitted",))
    assert chaos_env.wait_quiescent(timeout=60)
    test_db = connection.settings_dict["NAME"]
    assert failures(chaos_env) == [f"no mark 'uncommitted' in {test_db}"]
    assert_verdicts(chaos_env.verdicts(), ok=0, failed=1)
'''


def test_transactional_db_rows_reach_the_workers_and_db_rows_do_not(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_marks.py").write_text(TESTS)
    developer_db = tmp_path / "developer" / "db.sqlite3"
    developer_db.parent.mkdir()
    # Not this run's xdist worker id: the inner pytest runs without xdist, and the settings
    # would append the outer worker's suffix to the database NAME the workers open.
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("PYTEST_XDIST_")
    }
    env |= {"DJANGO_APP_DB": str(developer_db)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rA", "-s",
         "--chaos-report-dir", str(tmp_path / "reports"), "test_marks.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "settings: tests.integration.django_app.settings_pytest (from ini)" in output
    assert "PASSED test_marks.py::test_transactional_db_row_is_seen_by_the_worker" in output
    assert "PASSED test_marks.py::test_db_row_is_invisible_to_the_worker" in output
    # the test database is a file beside the developer's, which pytest-django never touched
    assert f"TEST DATABASE {developer_db.with_name('test_db.sqlite3')}" in output
    assert not developer_db.exists()
