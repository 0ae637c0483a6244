"""``--python``: the harness in an environment of its own, the app's Celery in the app's.

The app's environment here is a uv venv holding Celery 5.2.7 with Kombu 5.2.4 and nothing else
(no redis-py, pydantic, PyYAML, rich, Jinja2: what a RabbitMQ app on Celery 5.2 may have), built
once and cached (``CELERY_CHAOS_ENV_DIR`` or ~/.cache/celery-chaos/envs; skipped when no package
index answers). Real workers run a built-in scenario on RabbitMQ there: it passes, so the agent
needed none of what the venv lacks, and the report's versions are the venv's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from celery_chaos.tools.matrix import envs
from celery_chaos.tools.matrix.version_sets import VersionSet

from tests.integration import cli_support
from tests.integration.rabbitmq_suite_support import skip_without_rabbitmq

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# Plain celery, not celery[redis] (a matrix version set pins that): no redis-py.
APP_ENV = VersionSet({}, "app-celery-5.2.7", ("celery==5.2.7", "kombu==5.2.4"))
LACKS = ("redis", "pydantic", "yaml", "rich", "jinja2")


def celery_chaos(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """Without ``VIRTUAL_ENV``: ``--python``'s default must not find the developer's."""
    return cli_support.celery_chaos(*args, cwd=cwd, unset=("VIRTUAL_ENV",), timeout=timeout)


@pytest.fixture(scope="module")
def app_python() -> str:
    """The app's interpreter: Celery 5.2.7, Kombu 5.2.4, none of :data:`LACKS`."""
    try:
        built = envs.build_env(APP_ENV, envs.Sources())
    except envs.EnvBuildError as error:
        pytest.skip(f"cannot build the app's environment (offline?): {error}")
    for module in LACKS:
        absent = subprocess.run([built.python, "-c", f"import {module}"], capture_output=True)
        assert absent.returncode != 0, f"the app's environment has {module}"
    return built.python


def test_run_on_the_apps_python_reports_its_celery_and_needs_no_redis_py(
    app_python: str, tmp_path: Path
) -> None:
    skip_without_rabbitmq()
    done = celery_chaos(
        "run", "--python", app_python, "--broker", "rabbitmq", "--only", "defaults-child-kill",
        "--only", "lock-killed-defaults", "--report-dir", str(tmp_path), "-j", "1", "--strict",
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert lines[0].startswith(f"celery-chaos: workers run on {app_python} (--python): ")
    assert "celery 5.2.7" in lines[0]
    (result_file,) = (tmp_path / "latest").glob("defaults-child-kill/result.json")
    versions = json.loads(result_file.read_text())["versions"]
    assert (versions["celery"], versions["kombu"], versions["redis-py"]) == ("5.2.7", "5.2.4", None)
    harness = subprocess.run([sys.executable, "-c", "import celery; print(celery.__version__)"],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert versions["harness_celery"] == harness
    # the lock scenario's task takes its lock through the agent's own client (store(), lock())
    assert "2/2 scenarios met their expectations" in done.stdout
    if harness != "5.2.7":  # the client dispatching runs the harness's Celery: said once
        said = [line for line in lines if "the client dispatching tasks runs" in line]
        assert said == [f"celery-chaos: {versions['client_mismatch']}"]
        assert f"celery {harness}, the workers 5.2.7" in said[0]


def test_audit_imports_the_app_on_its_python(app_python: str, tmp_path: Path) -> None:
    """The app module asserts it runs on Celery 5.2.7: it imports only on the app's python."""
    (tmp_path / "shop.py").write_text(
        "import celery\n"
        "assert celery.__version__ == '5.2.7', celery.__version__\n"
        "app = celery.Celery('shop', broker='amqp://guest@localhost//')\n"
        "@app.task(acks_late=True)\n"
        "def charge(order_id):\n"
        "    return order_id\n"
    )
    done = celery_chaos(
        "audit", "--app", "shop:app", "--python", app_python, "--json", cwd=tmp_path
    )
    assert done.returncode in (0, 1), done.stderr
    document = json.loads(done.stdout)
    assert document["celery_version"] == "5.2"
    assert document["tasks"]["shop.charge"]["acks_late"] is True
    here = celery_chaos("audit", "--app", "shop:app", "--python", sys.executable, cwd=tmp_path)
    assert here.returncode == 2 and "AssertionError" in here.stderr  # the harness's own Celery


def test_a_bad_python_exits_2_with_one_line_and_starts_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    made = subprocess.run([envs.uv_executable(), "venv", "-q", "--python", sys.executable,
                           str(empty)], capture_output=True, text=True)  # fmt: skip
    assert made.returncode == 0, made.stderr
    reports = tmp_path / "reports"
    cases = {
        str(tmp_path / "missing"): "no such file",
        "/bin/sh": "not a Python 3 interpreter",
        str(empty / "bin" / "python"): "Celery is not importable there",
    }
    for path, reason in cases.items():
        for command in (["run", "--report-dir", str(reports)], ["list"], ["audit", "--app", "a:b"]):
            done = celery_chaos(*command, "--python", path)
            assert done.returncode == 2, (command, path, done.stderr)
            (line,) = done.stderr.strip().splitlines()
            assert line.startswith(f"celery-chaos: error: --python {path}: {reason}"), line
    assert not reports.exists()  # nothing started, not even a report folder


def test_a_redis_broker_without_redis_py_there_is_refused_in_one_line(
    app_python: str, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    done = celery_chaos("run", "--python", app_python, "--only", "defaults-child-kill",
                        "--report-dir", str(reports))  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        f"celery-chaos: error: --python {app_python}: no redis-py there, which scenario"
        " defaults-child-kill's Redis broker needs (an app on RabbitMQ: --broker rabbitmq)"
    )
    assert not reports.exists()


def test_repro_runs_the_workers_on_the_apps_python(app_python: str, tmp_path: Path) -> None:
    """repro's workers run the venv's Celery 5.2.7 (this app imports in both environments; one
    that imports only in its own: the next test)."""
    skip_without_rabbitmq()
    (tmp_path / "shop.py").write_text(
        "import time\n"
        "from celery import Celery\n"
        "from celery_chaos import checkpoint\n"
        "app = Celery('shop', broker='amqp://guest@localhost//')\n"
        "@app.task\n"
        "def charge(order_id):\n"
        "    for step in range(10):\n"
        "        checkpoint(f'step-{step}')\n"
        "        time.sleep(0.1)\n"
        "    return order_id\n"
    )
    done = celery_chaos(
        "repro", "--python", app_python, "--app", "shop:app", "--task", "shop.charge",
        "--args", "[1]", "--fault", "kill_child", "--at", "checkpoint:step-3",
        "--report-dir", str(tmp_path / "reports"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]  # LOST: acks early
    assert done.stdout.splitlines()[0].startswith(f"celery-chaos: workers run on {app_python}")
    (result_file,) = (tmp_path / "reports" / "latest").glob("*/result.json")
    versions = json.loads(result_file.read_text())["versions"]
    assert (versions["celery"], versions["redis-py"]) == ("5.2.7", None)
    if versions["harness_celery"] != "5.2.7":
        assert f"celery-chaos: {versions['client_mismatch']}" in done.stdout.splitlines()


ONLY_THERE = (  # pytz: Celery 5.2.7 needs it, the harness's Celery (5.3+) does not
    "import time\n"
    "import pytz\n"
    "from celery import Celery\n"
    "from celery_chaos import checkpoint\n"
    "app = Celery('shop', broker='amqp://guest@localhost//')\n"
    "app.conf.task_routes = {'shop.charge': {'queue': 'payments'}}\n"
    "@app.task(acks_late=True)\n"
    "def charge(order_id):\n"
    "    for step in range(10):\n"
    "        checkpoint(f'step-{step}')\n"
    "        time.sleep(0.1)\n"
    "    return str(pytz.utc)\n"
)


def test_repro_imports_the_app_on_its_python_to_find_the_task_and_its_queue(
    app_python: str, tmp_path: Path
) -> None:
    """An app that imports only in its own environment: repro reads its task, the task's
    options (acks_late) and its route (the -Q queue) there, and the workers run it."""
    skip_without_rabbitmq()
    (tmp_path / "shop.py").write_text(ONLY_THERE)
    here = subprocess.run([sys.executable, "-c", "import shop"], cwd=tmp_path, capture_output=True)
    assert here.returncode != 0 and b"pytz" in here.stderr  # not importable by the harness
    done = celery_chaos(
        "repro", "--python", app_python, "--app", "shop:app", "--task", "shop.charge",
        "--args", "[1]", "--fault", "kill_child", "--at", "checkpoint:step-3",
        "--worker-args", "-Q payments", "--report-dir", str(tmp_path / "reports"), cwd=tmp_path,
    )  # fmt: skip
    (result_file,) = (tmp_path / "reports" / "latest").glob("*/result.json")
    document = json.loads(result_file.read_text())
    output = done.stdout[-3000:] + done.stderr[-2000:]
    assert document["versions"]["celery"] == "5.2.7", output
    # The workers consume only payments: published anywhere else, the fault never hits (exit 2).
    # acks_late without task_reject_on_worker_lost: the killed child's task is acked as failed.
    assert (done.returncode, document["repro"]["verdict"]) == (1, "LOST"), output
    assert "acks_late=True, reject_on_worker_lost=False" in document["repro"]["settings"][0]
    assert document["repro"]["settings"][0].endswith("(task shop.charge sets acks_late)")


def test_repro_says_in_one_line_when_the_app_does_not_import_on_its_python(
    app_python: str, tmp_path: Path
) -> None:
    (tmp_path / "shop.py").write_text("import no_such_module\n")
    done = celery_chaos(
        "repro", "--python", app_python, "--app", "shop:app", "--task", "shop.charge",
        "--fault", "kill_child", "--at", "seconds:1", "--report-dir", str(tmp_path / "r"),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("celery-chaos: error: --app shop:app: ") and "no_such_module" in line
    assert not any((tmp_path / "r").glob("*"))  # no run folder: nothing started


SOFT_SHUTDOWN = Path(ROOT / "scenarios" / "19-cold-shutdown-soft-timeout.yaml")


def test_a_setting_newer_than_the_workers_celery_is_not_runnable_unless_expect_when_covers_it(
    app_python: str, tmp_path: Path
) -> None:
    """Scenario 19 without its ``celery: <5.5`` entry is not_runnable on Celery 5.2.7 workers
    (the setting would be ignored there); with it, it runs and meets that entry: the task lost."""
    skip_without_rabbitmq()
    text = SOFT_SHUTDOWN.read_text(encoding="utf-8")
    bare = text[: text.index("expect_when:")] + "timeout: 30\n"
    (tmp_path / "bare.yaml").write_text(
        bare.replace("name: cold-shutdown-soft-timeout", "name: bare")
    )
    reports = tmp_path / "reports"
    for path in (tmp_path / "bare.yaml", SOFT_SHUTDOWN):
        done = celery_chaos(
            "run", str(path), "--python", app_python, "--broker", "rabbitmq",
            "--report-dir", str(reports), "-j", "1",
        )  # fmt: skip
        name = "bare" if path.name == "bare.yaml" else "cold-shutdown-soft-timeout"
        (result_file,) = (reports / "latest").glob(f"{name}/result.json")
        document = json.loads(result_file.read_text())
        output = done.stdout[-3000:] + done.stderr[-2000:]
        assert document["versions"]["celery"] == "5.2.7", output
        if name == "bare":
            assert (done.returncode, document["status"]) == (2, "not_runnable"), output
            assert document["reason"] == (
                "celery.worker_soft_shutdown_timeout needs Celery 5.5+; the workers run 5.2.7"
                " (no expect_when on celery covers 5.2.7)"
            )
        else:
            assert (done.returncode, document["status"]) == (0, "passed"), output
            assert (document["verdicts"]["lost"], document["verdicts"]["ok"]) == (1, 0), output


def test_the_settings_table_is_what_celery_5_2_7_lacks(app_python: str) -> None:
    """run.versions.CELERY_SINCE names exactly the settings the harness's Celery has and the
    workers' 5.2.7 does not (measured on both installs)."""
    from celery.app import defaults
    from celery_chaos.run.versions import CELERY_SINCE

    listed = subprocess.run(
        [app_python, "-c", "from celery.app import defaults; print(' '.join(defaults.DEFAULTS))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert not set(CELERY_SINCE) & set(listed)
    assert set(defaults.DEFAULTS) - set(listed) <= set(CELERY_SINCE)


def test_the_apps_tasks_are_checked_on_its_python_before_anything_starts(
    app_python: str, tmp_path: Path
) -> None:
    """The preflight's check (the workload's tasks are registered) runs on the app's python."""
    (tmp_path / "typo.yaml").write_text(
        "name: typo\n"
        "description: a misspelled task name\n"
        "broker: {kind: rabbitmq}\n"
        "workload:\n"
        "  - {task: sample_tasks.tasks.wrok}\n"
        "expect: {ok: 1}\n"
    )
    reports = tmp_path / "reports"
    for command in (["run", "--report-dir", str(reports)], ["list"]):
        done = celery_chaos(*command, str(tmp_path / "typo.yaml"), "--python", app_python)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.strip() == (
            f"celery-chaos: error: --python {app_python}: scenario typo: workload[0].task:"
            " 'sample_tasks.tasks.wrok' is not registered in celery_chaos.sample_tasks.app"
        )
    assert not reports.exists()
