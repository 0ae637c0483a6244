"""Django projects in every command: ``--settings`` (or ``DJANGO_SETTINGS_MODULE`` already in the
environment) configures the harness's own import of the app, the workers and imports on
``--python``; ``config_from_object("django.conf:settings", namespace="CELERY")`` and
``@shared_task`` work as in production.

The app (tests/integration/django_app/celery_nodefault.py) sets no default settings module, so
only the flag or the variable can configure it. ``settings_acks`` sets
``CELERY_TASK_ACKS_LATE`` and ``CELERY_TASK_REJECT_ON_WORKER_LOST``: with it a pool process
SIGKILLed mid ``slow_add`` is *recovered*; with ``settings`` (Celery's defaults) the task is
*lost*. So a verdict says which module reached the workers, which decide the redelivery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cli_support import ROOT, celery_chaos

pytest.importorskip("django_celery_results")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
APP = "tests.integration.django_app.celery_nodefault:app"
ACKS = "tests.integration.django_app.settings_acks"
PLAIN = "tests.integration.django_app.settings"
MISSING = "tests.integration.django_app.no_such_settings"
SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"
SCENARIO = f"""name: django-kill
description: a pool process SIGKILLed mid shared_task of a Django app
timeout: 60
workers: {{count: 1, concurrency: 2, app: "{APP}"}}
workload:
  - {{task: django_nodefault.slow_add, args: [2, 3], count: 2}}
faults:
  - {{kind: kill_child, when: {{task: 0, checkpoint: halfway}}}}
expect: {{recovered: 1, ok: 1, lost: 0}}
"""


def cli(tmp_path: Path, *args: str, settings_env: str | None = None) -> subprocess.CompletedProcess:
    """The CLI with no settings module in its environment unless ``settings_env``; the app's
    SQLite database (which no command should create) in the test's folder."""
    env = {"DJANGO_APP_DB": str(tmp_path / "developer.sqlite3")}
    env |= {SETTINGS_ENV: settings_env} if settings_env else {}
    return celery_chaos(*args, env=env, unset=(SETTINGS_ENV,), timeout=240)


def audited(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return json.loads(done.stdout)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line


def test_audit_reads_the_celery_namespaced_settings_of_the_module_given(tmp_path: Path) -> None:
    found = audited(cli(tmp_path, "audit", "--app", APP, "--json", "--settings", ACKS))
    assert found["settings"]["task_acks_late"] is True
    assert found["settings"]["task_reject_on_worker_lost"] is True
    assert found["tasks"]["django_nodefault.slow_add"]["acks_late"] is True  # a @shared_task
    plain = audited(cli(tmp_path, "audit", "--app", APP, "--json", settings_env=PLAIN))
    assert plain["settings"]["task_acks_late"] is False  # the variable, without the flag
    line = one_error_line(cli(tmp_path, "audit", "--app", APP))
    assert line.startswith(f"celery-chaos: error: --app {APP}: ImproperlyConfigured: "), line
    assert not (tmp_path / "developer.sqlite3").exists()


def test_repro_kills_a_worker_mid_shared_task_with_the_settings_given(tmp_path: Path) -> None:
    repro = ("repro", "--app", APP, "--task", "django_nodefault.slow_add", "--args", "[2, 3]",
             "--at", "checkpoint:halfway", "--report-dir", str(tmp_path / "reports"))  # fmt: skip
    done = cli(tmp_path, *repro, "--settings", ACKS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RECOVERED: the killed attempt was redelivered" in done.stdout
    assert "acks_late=True, reject_on_worker_lost=True" in done.stdout
    assert "results: django-celery-results' table in an SQLite file in the run's folder" in (
        done.stdout
    )
    lost = cli(tmp_path, *repro, settings_env=PLAIN)
    assert lost.returncode == 1, lost.stdout + lost.stderr
    assert "LOST: the task never completed" in lost.stdout
    assert "task_acks_late=False" in lost.stdout


def test_run_and_list_a_scenario_naming_the_app(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "django-kill.yaml").write_text(SCENARIO)
    where = str(tmp_path / "scenarios")
    line = one_error_line(cli(tmp_path, "list", where))
    assert f"workers.app: {APP}: cannot load its tasks: ImproperlyConfigured" in line, line
    assert cli(tmp_path, "list", where, "--settings", ACKS).returncode == 0
    done = cli(tmp_path, "run", where, "--settings", ACKS, "--strict", "-j", "1",
               "--report-dir", str(tmp_path / "reports"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = (tmp_path / "reports" / "latest").glob("django-kill/result.json")
    verdicts = json.loads(result.read_text())["verdicts"]
    assert (verdicts["recovered"], verdicts["ok"], verdicts["lost"]) == (1, 1, 0), verdicts


@pytest.mark.parametrize("command", ["audit", "repro", "run", "list"])
def test_a_settings_module_that_does_not_import_is_one_line_and_starts_nothing(
    tmp_path: Path, command: str
) -> None:
    args = {"audit": ("--app", APP), "repro": ("--app", APP, "--task", "django_nodefault.slow_add")}
    reports = tmp_path / "reports"
    extra = ("--report-dir", str(reports)) if command in ("repro", "run") else ()
    done = cli(tmp_path, command, *args.get(command, ()), *extra, "--settings", MISSING)
    assert one_error_line(done) == (
        f"celery-chaos: error: --settings {MISSING}: cannot import: ModuleNotFoundError: No"
        f" module named '{MISSING}'"
    )
    assert not reports.exists()


@pytest.mark.parametrize("command", ["run", "repro"])
def test_settings_with_the_docker_backend_is_refused_in_one_line(
    tmp_path: Path, command: str
) -> None:
    # the containers would not get this process's variable: refused, not half applied
    args = ("--app", APP, "--task", "django_nodefault.slow_add") if command == "repro" else ()
    done = cli(tmp_path, command, *args, "--backend", "docker", "--settings", ACKS)
    assert one_error_line(done) == (
        "celery-chaos: error: --settings: only with --backend local (--backend docker: set"
        " DJANGO_SETTINGS_MODULE in the image, workers.env or repro's --env)"
    )


def test_settings_reach_the_apps_own_python(tmp_path: Path) -> None:
    # a virtualenv seeing this environment's packages: another interpreter, so --python
    # imports the app (audit) and runs the workers (run) there, not in this process
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    found = audited(cli(tmp_path, "audit", "--python", python, "--app", APP, "--json",
                        "--settings", ACKS))  # fmt: skip
    assert found["settings"]["task_acks_late"] is True
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "django-kill.yaml").write_text(SCENARIO)
    done = cli(tmp_path, "run", str(tmp_path / "scenarios"), "--python", python, "--settings",
               ACKS, "--strict", "-j", "1", "--report-dir", str(tmp_path / "reports"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"celery-chaos: workers run on {python} (--python)")
    assert cli(tmp_path, "list", str(tmp_path / "scenarios"), "--python", python,
               "--settings", ACKS).returncode == 0  # fmt: skip
    repro = cli(tmp_path, "repro", "--python", python, "--app", APP, "--task",
                "django_nodefault.slow_add", "--args", "[2, 3]", "--at", "checkpoint:halfway",
                "--settings", ACKS, "--report-dir", str(tmp_path / "reports"))  # fmt: skip
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert "RECOVERED: the killed attempt was redelivered" in repro.stdout
    bad = cli(tmp_path, "audit", "--python", python, "--app", APP, "--settings", MISSING)
    assert one_error_line(bad).startswith(
        f"celery-chaos: error: --settings {MISSING}: cannot import on {python}: ModuleNotFound"
    )


CHAOS_ENV_TEST = f'''
import pytest
from celery_chaos.testing import assert_verdicts


@pytest.mark.chaos(
    workers={{"app": "{APP}", "count": 1, "concurrency": 2}},
)
def test_killed_shared_task_comes_back(chaos_env):
    task = chaos_env.dispatch("django_nodefault.slow_add", args=(2, 3))
    chaos_env.fault("kill_child", task=task, checkpoint="halfway")
    assert chaos_env.wait_quiescent(timeout=60)
    assert_verdicts(chaos_env.verdicts(), recovered=1, lost=0)
'''


def test_chaos_env_honours_the_settings_module_in_the_environment(tmp_path: Path) -> None:
    # pytest-django's --ds or ini sets this same variable before any test runs
    (tmp_path / "test_django_chaos.py").write_text(CHAOS_ENV_TEST)
    env = {k: v for k, v in os.environ.items() if k != SETTINGS_ENV}
    env |= {SETTINGS_ENV: ACKS, "DJANGO_APP_DB": str(tmp_path / "developer.sqlite3")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-p",
         "no:django", "-rA", "--chaos-report-dir", str(tmp_path / "reports"),
         "test_django_chaos.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "PASSED test_django_chaos.py::test_killed_shared_task_comes_back" in done.stdout
