"""Result backends with real workers of a real app (tests/integration/result_app.py): the app's
own backend on a closed port (``results: app``) makes a completed task ``result_not_stored``;
without ``results: app`` the harness runs a backend of the same kind and the result is stored
and read back. The unmasked URL never reaches the history."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.run import results_state
from celery_chaos.run.runner import RunOptions, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
APP = "tests.integration.result_app:app"
ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A port nothing listens on (bound, then released: refused from then on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(tmp_path: Path, name: str, **spec: Any) -> tuple[Any, list[dict], dict]:
    """Run ``add`` and ``fire_and_forget`` on one worker of the app; the result, the history and
    what the run read back while its backend was still alive."""
    data = {"name": name, "description": f"{name} (result backends test)", "timeout": 60}
    data |= {"workers": {"count": 1, "app": APP, "env": spec.pop("env", {})}}
    data["workload"] = [
        {"task": "result_app.add", "args": [2, 3]},
        {"task": "result_app.fire_and_forget"},
    ]
    seen: dict[str, Any] = {}

    def read_back(backend: Any) -> None:
        history = backend.ledger.read_all()
        seen["states"], seen["masked"] = results_state.read_result_states(backend, history)
        seen["password"] = backend.ledger.client.connection_pool.connection_kwargs.get("password")

    options = RunOptions(report_dir=tmp_path, on_finish=read_back)
    lines: list[str] = []
    result = run_scenario(
        parse_scenario(data | spec, f"{name}.yaml"), options, tmp_path, lines.append
    )
    seen["log"] = "\n".join(lines)
    assert result.verdicts is not None, f"{result.status}: {result.reason}"
    lines = (result.report_dir / "history.jsonl").read_text().splitlines()
    return result, [json.loads(line) for line in lines], seen


def task_ids(history: list[dict]) -> dict[str, str]:
    return {e["task"]: e["task_id"] for e in history if e["type"] == "dispatch"}


def starts(history: list[dict]) -> dict[str, bool]:
    return {e["task_id"]: e["stores_result"] for e in history if e["type"] == "attempt_start"}


def test_unreachable_app_backend_is_result_not_stored(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    result, history, seen = run(
        tmp_path, "own-backend-closed", results="app", env={"RESULT_APP_BACKEND": url}
    )
    ids = task_ids(history)
    add, forgotten = ids["result_app.add"], ids["result_app.fire_and_forget"]
    ready = [e for e in history if e["type"] == "worker_ready"]
    assert ready and all(e["result_backend"] == url for e in ready), ready
    assert {e["result_backend_origin"] for e in ready} == {"app"}
    assert starts(history) == {add: True, forgotten: False}
    ends = {e["task_id"]: e["state"] for e in history if e["type"] == "attempt_end"}
    assert ends == {add: "SUCCESS", forgotten: "SUCCESS"}  # the body ran, postrun said SUCCESS
    counts = result.verdicts.counts
    assert counts["ok"] == 2 and counts["result_not_stored"] == 1, counts
    assert result.verdicts.result_not_stored == [add]
    assert seen["masked"] == url and set(seen["states"]) == {add}
    assert seen["states"][add].startswith("unreadable: ConnectionError"), seen["states"]
    log = (result.report_dir / "logs" / "worker-w0.log").read_text()
    assert "Exception raised outside body" in log  # Celery's trace: mark_as_done raised
    assert f"   results: {url} (the app's own, as results: app asks)" in seen["log"]


def test_harness_runs_a_backend_of_the_apps_kind_and_the_result_is_stored(tmp_path: Path):
    # the app's own backend is the closed port (result_app's default); no ``results`` key
    result, history, seen = run(tmp_path, "harness-backend")
    ids = task_ids(history)
    add = ids["result_app.add"]
    ready = [e for e in history if e["type"] == "worker_ready"]
    assert {e["result_backend_origin"] for e in ready} == {"harness"}, ready
    backend = ready[0]["result_backend"]
    assert backend.startswith("redis://") and backend.endswith("/1"), backend
    assert seen["states"] == {add: "SUCCESS"}  # read back from the ledger's Redis, db 1
    assert f"   results: {backend} (the harness's, of the app's kind," in seen["log"]
    assert result.verdicts.counts["result_not_stored"] == 0
    assert result.verdicts.counts["ok"] == 2
    if seen["password"]:  # the ledger's password: masked in every event, never written
        assert ":***@" in backend
        assert seen["password"] not in (result.report_dir / "history.jsonl").read_text()


def repro(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``celery-chaos repro`` of result_app's slow_add, killed at its checkpoint, with the
    settings that redeliver it: the task itself recovers; only storing its result can fail."""
    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "repro", "--app", APP]
        + ["--task", "result_app.slow_add", "--args", "[2, 3]", "--at", "checkpoint:halfway"]
        + ["--set", "task_acks_late=true", "--set", "task_reject_on_worker_lost=true"]
        + ["--report-dir", str(tmp_path), *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=180,
    )
    found = list(tmp_path.glob("*/repro-*/result.json"))
    assert found, done.stdout + done.stderr
    return done, json.loads(found[0].read_text())


def test_repro_results_app_counts_the_unstored_result(tmp_path: Path) -> None:
    done, result = repro(tmp_path, "--results", "app")
    first = done.stdout.splitlines()[0]
    assert "results: your app's own redis://127.0.0.1:1/0" in first, first
    assert result["verdicts"]["recovered"] == 1  # the task itself came through
    assert result["verdicts"]["result_not_stored"] == 1
    assert done.returncode == 1, done.stdout + done.stderr
    assert "could not be read" in done.stdout  # the reason is printed, not just the code


def test_repro_runs_a_result_backend_of_the_apps_kind_by_default(tmp_path: Path) -> None:
    done, result = repro(tmp_path)
    first = done.stdout.splitlines()[0]
    assert "results: a database of the harness's ledger Redis in place of your app's" in first
    assert result["repro"]["results"] in first
    assert result["verdicts"]["recovered"] == 1
    assert result["verdicts"]["result_not_stored"] == 0
    assert done.returncode == 0, done.stdout + done.stderr


def _postgres_binaries() -> bool:
    from celery_chaos.services import postgres

    try:
        postgres.bin_dir()
        return True
    except postgres.PostgresError:
        return False


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_an_sqlalchemy_app_gets_the_runs_own_database(tmp_path: Path, database: str) -> None:
    """``db+`` backends: an SQLite file in the run's folder, or with services.postgres the
    run's PostgreSQL through the app's own driver; the developer's database is never touched."""
    pytest.importorskip("sqlalchemy")
    own = tmp_path / "developers-results.db"
    spec: dict[str, Any] = {"env": {"RESULT_APP_BACKEND": f"db+sqlite:///{own}"}}
    if database == "postgres":
        pytest.importorskip("psycopg")
        if not _postgres_binaries():
            pytest.skip("no PostgreSQL binaries")
        spec = {"env": {"RESULT_APP_BACKEND": "db+postgresql+psycopg://u:p@127.0.0.1:1/db"}}
        spec["services"] = {"postgres": {}}
    result, history, seen = run(tmp_path, f"sqlalchemy-{database}", **spec)
    add = task_ids(history)["result_app.add"]
    assert seen["states"] == {add: "SUCCESS"}, seen
    if database == "sqlite":
        assert seen["masked"].endswith(f"{result.report_dir.resolve()}/celery-results.sqlite")
        assert not own.exists()
    else:
        assert seen["masked"].startswith("db+postgresql+psycopg://chaos:***@127.0.0.1:")
    assert result.verdicts.counts["result_not_stored"] == 0


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
@pytest.mark.parametrize("results", ["harness", "app"])
def test_a_result_backend_set_in_celery_settings(tmp_path: Path, backend: str, results: str):
    """The sample app given ``celery.result_backend`` (a closed port) by the scenario: the
    harness's Redis in its place is read where the harness reaches it (on docker the workers
    reach the ledger by its container name), the app's own is result_not_stored; either way
    the harness's client never connects to it."""
    if backend == "docker":
        from tests.integration.docker_support import require_images

        require_images()
    url = f"redis://127.0.0.1:{closed_port()}/0"
    data = {"name": f"celery-backend-{results}", "description": "results test", "timeout": 90}
    data |= {"workers": {"count": 1}, "celery": {"result_backend": url}}
    data |= {"workload": [{"task": "sample_tasks.tasks.work"}]}
    data |= {"results": "app"} if results == "app" else {}
    seen: dict[str, Any] = {}

    def read_back(placement: Any) -> None:
        history = placement.ledger.read_all()
        seen["states"], seen["masked"] = results_state.read_result_states(placement, history)

    options = RunOptions(backend=backend, report_dir=tmp_path, on_finish=read_back)
    result = run_scenario(parse_scenario(data, "x.yaml"), options, tmp_path, lambda _: None)
    assert result.verdicts is not None, f"{result.status}: {result.reason}"
    [task_id] = list(seen["states"])
    if results == "app":
        assert seen["masked"] == url
        assert seen["states"][task_id].startswith("unreadable: ConnectionError")
        assert result.verdicts.result_not_stored == [task_id]
    else:
        assert seen["masked"].startswith("redis://") and seen["masked"].endswith("/1")
        assert seen["states"] == {task_id: "SUCCESS"}
        assert result.verdicts.counts["result_not_stored"] == 0
    assert result.verdicts.counts["ok"] == 1


SQLALCHEMY_IMAGE = "celery-chaos-test/sqlalchemy-worker:latest"
SQLALCHEMY_DOCKERFILE = """\
FROM celery-chaos/worker:latest
USER root
COPY *.whl /tmp/wheels/
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /tmp/wheels/*.whl \\
    && rm -rf /tmp/wheels && /opt/venv/bin/python -c "import sqlalchemy"
USER chaos
"""


@pytest.fixture(scope="module")
def sqlalchemy_worker_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The default worker image plus SQLAlchemy (an SQLAlchemy app's own image has it; the
    default one carries psycopg only), from a wheel of the host's version: built offline."""
    from tests.integration.docker_support import require_images, unavailable

    require_images()
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from celery_chaos.placements.docker.images import DEFAULT_POSTGRES_IMAGE, docker_client

    client = docker_client(timeout=300)
    if DEFAULT_POSTGRES_IMAGE not in {t for image in client.images.list() for t in image.tags}:
        unavailable(f"image not built: {DEFAULT_POSTGRES_IMAGE}")
    context = tmp_path_factory.mktemp("sqlalchemy-image")
    wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir"]
    done = subprocess.run(
        [*wheel, str(context), f"sqlalchemy=={sqlalchemy.__version__}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 or not list(context.glob("*.whl")):
        unavailable(f"no sqlalchemy wheel for the worker image: {done.stderr.strip()[-200:]}")
    (context / "Dockerfile").write_text(SQLALCHEMY_DOCKERFILE)
    client.images.build(path=str(context), tag=SQLALCHEMY_IMAGE, rm=True)
    return SQLALCHEMY_IMAGE


@pytest.mark.docker
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_an_sqlalchemy_app_on_docker_gets_the_runs_own_database(
    tmp_path: Path, sqlalchemy_worker_image: str, database: str
) -> None:
    """On docker the harness's SQLAlchemy backend is the run's PostgreSQL container (the
    workers reach it by its container name, the harness by its published port) or an SQLite
    file in the run's mounted folder; the result is read back SUCCESS."""
    own = "db+postgresql+psycopg://u:p@127.0.0.1:1/db" if database == "postgres" else None
    own = own or f"db+sqlite:///{tmp_path / 'developers-results.db'}"
    data = {"name": f"sqlalchemy-docker-{database}", "description": "results", "timeout": 90}
    data |= {"workers": {"count": 1}, "celery": {"result_backend": own}}
    data |= {"workload": [{"task": "sample_tasks.tasks.work"}]}
    data |= {"services": {"postgres": {}}} if database == "postgres" else {}
    seen: dict[str, Any] = {}

    def read_back(placement: Any) -> None:
        history = placement.ledger.read_all()
        seen["states"], seen["masked"] = results_state.read_result_states(placement, history)

    options = RunOptions(
        backend="docker",
        report_dir=tmp_path,
        on_finish=read_back,
        # the image's own agent and sample app (a mounted agent would hide its sample_tasks)
        backend_options={"worker_image": sqlalchemy_worker_image, "mount_agent": False},
    )
    result = run_scenario(parse_scenario(data, "x.yaml"), options, tmp_path, lambda _: None)
    assert result.verdicts is not None, f"{result.status}: {result.reason}"
    [task_id] = list(seen["states"])
    assert seen["states"] == {task_id: "SUCCESS"}, seen
    if database == "postgres":
        assert seen["masked"].startswith("db+postgresql+psycopg://chaos:***@chaos-"), seen
    else:
        assert seen["masked"].startswith("db+sqlite:///") and seen["masked"].endswith(
            "/celery-results.sqlite"
        ), seen
        assert (result.report_dir / "worker-files" / "celery-results.sqlite").exists()
        assert not (tmp_path / "developers-results.db").exists()
    assert result.verdicts.counts["result_not_stored"] == 0
    assert result.verdicts.counts["ok"] == 1
