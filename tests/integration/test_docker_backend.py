"""The default suite on the docker backend: Redis and workers in real containers, real
`docker kill`, real OOM kills reported by the engine, real network partitions. The same scenario
files as the local backend, with the same verdicts where the fault exists on both."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker.errors
import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult, failure_message
from celery_chaos.core.scenario import load_file
from celery_chaos.placements.docker.placement import RUN_LABEL, DockerPlacement, docker_client
from celery_chaos.run.runner import RunOptions, run_scenario
from testcontainers.core.config import testcontainers_config

from tests.integration.docker_support import require_images

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
pytestmark = [pytest.mark.docker, pytest.mark.integration]
RYUK_IMAGE = testcontainers_config.ryuk_image


@pytest.fixture(autouse=True)
def _images() -> None:
    require_images()


def run(path: Path, tmp_path: Path) -> ScenarioResult:
    """Run a default-suite scenario on docker, strict (README: Strict); afterwards, no container
    of that run is left (other test processes may run docker scenarios of their own at the same
    time: only ours count)."""
    run_ids: list[str] = []
    options = RunOptions(
        backend="docker",
        report_dir=tmp_path,
        on_finish=lambda b: run_ids.append(b.run_id),
        strict=True,
    )
    result = run_scenario(load_file(path), options, tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    assert not result.unclaimed, failure_message(result)
    assert run_ids and labelled_containers(run_ids[0]) == []  # everything removed after the run
    return result


def run_id_in(text: str) -> str:
    """The run id in a worker's name (``w0@chaos-<run id>``) found in a run's output."""
    found = re.search(r"@chaos-([0-9a-f]{10})\b", text)
    assert found, "no worker name in the run's output"
    return found.group(1)


def labelled_containers(run_id: str) -> list:
    """The containers of one run (by its label)."""
    filters = {"label": f"{RUN_LABEL}={run_id}"}
    return docker_client().containers.list(all=True, filters=filters)


@pytest.mark.parametrize(
    ("name", "outcomes"),
    [
        ("01-defaults-child-kill.yaml", ["lost", "ok"]),
        ("03-ack-late-reject-child-kill.yaml", ["recovered", "ok", "ok"]),
        ("04a-ack-late-kill-worker-fast-restore.yaml", ["recovered", "recovered"]),
        ("09b-broker-restart-aof.yaml", ["ok", "ok", "ok"]),
        # {run_dir} is one folder shared by the run's worker containers: the replacement
        # container reads the revokes its predecessor saved (worker_state_db)
        ("15-revoke-kept-with-state-db.yaml", ["lost"]),
    ],
)
def test_same_verdicts_as_local(tmp_path: Path, name: str, outcomes: list[str]) -> None:
    result = run(SCENARIOS / name, tmp_path)
    assert [task.outcome for task in result.verdicts.tasks] == outcomes
    assert result.status == PASSED, result.expectations
    assert (result.report_dir / "logs" / "worker-w0.log").stat().st_size > 0


def test_container_oom_kill_is_seen_and_recovered(tmp_path: Path) -> None:
    result = run(SCENARIOS / "07-oom-ack-late.yaml", tmp_path)
    task = result.verdicts.tasks[0]
    assert task.outcome == "recovered"
    assert task.attempts[0].exit_reason.startswith("oom_kill")
    assert "OOM kill" in result.verdicts.faults[0]["detail"]


def test_partition_gives_the_same_verdicts_on_docker_and_locally(tmp_path: Path) -> None:
    """Docker disconnects the container from the broker network; the local backend blackholes
    the worker's own proxy (issue 12): the same fault name, the same expectations met."""
    scenario = SCENARIOS / "docker-only" / "10-partition-ack-late.yaml"
    local = run_scenario(
        load_file(scenario), RunOptions(report_dir=tmp_path), tmp_path / "l", log=lambda _: None
    )
    assert local.status == PASSED and local.verdicts.faults[0]["status"] == "injected"
    result = run(scenario, tmp_path)
    partition = result.verdicts.faults[0]
    assert partition["kind"] == "partition" and partition["status"] == "injected"
    assert result.verdicts.counts["lost"] == 0
    assert result.status == PASSED, result.expectations


def test_run_is_built_of_labelled_testcontainers_on_loopback(tmp_path: Path) -> None:
    """What the backend promises about a run's objects, read back from the engine."""
    backend = DockerPlacement(load_file(SCENARIOS / "03-ack-late-reject-child-kill.yaml"), tmp_path)
    backend.check_runnable()
    with backend:
        backend.start()
        containers = labelled_containers(backend.run_id)
        by_role = {c.labels["celery-chaos.role"]: c for c in containers}
        assert set(by_role) == {"broker", "ledger", "worker"}
        for container in containers:
            assert container.labels[RUN_LABEL] == backend.run_id
            assert container.labels["org.testcontainers"] == "true"  # created by testcontainers
        for role in ("broker", "ledger"):
            (binding,) = by_role[role].attrs["HostConfig"]["PortBindings"]["6379/tcp"]
            assert binding["HostIp"] == "127.0.0.1"
        worker = by_role["worker"].attrs
        assert set(worker["NetworkSettings"]["Networks"]) == {
            f"chaos-{backend.run_id}-broker",
            f"chaos-{backend.run_id}-ledger",
        }
        assert worker["Config"]["User"] not in ("", "0", "root")
        assert not worker["HostConfig"]["Privileged"]
        assert not [m for m in worker["Mounts"] if "docker.sock" in m["Source"]]
        run_networks = {"label": f"{RUN_LABEL}={backend.run_id}"}
        assert len(docker_client().networks.list(filters=run_networks)) == 2
    assert labelled_containers(backend.run_id) == []
    assert docker_client().networks.list(filters=run_networks) == []


def test_ryuk_on_without_its_image_still_runs_and_cleans_up(tmp_path: Path) -> None:
    """Testcontainers' reaper is on by default; where its image cannot be pulled (no registry),
    the run goes on without it and label cleanup removes everything."""
    env = {k: v for k, v in os.environ.items() if k != "TESTCONTAINERS_RYUK_DISABLED"}
    result = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "run",
         str(SCENARIOS / "03-ack-late-reject-child-kill.yaml"), "--backend", "docker",
         "--report-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        docker_client().images.get(RYUK_IMAGE)
    except docker.errors.ImageNotFound:
        assert "Ryuk reaper off" in result.stdout + result.stderr
    report = next(tmp_path.glob("*/*/result.json")).read_text()
    assert labelled_containers(run_id_in(report)) == []


def test_killed_harness_leaves_containers_that_cleanup_removes(tmp_path: Path) -> None:
    harness = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery_chaos.cli",
            "run",
            str(SCENARIOS / "04b-ack-late-kill-worker-default-visibility.yaml"),
            "--backend",
            "docker",
            "--report-dir",
            str(tmp_path),
            "-v",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"TESTCONTAINERS_RYUK_DISABLED": "true"},  # Ryuk would reap them too
    )
    assert harness.stdout is not None
    for line in harness.stdout:
        if "attempt_start" in line:
            break
    harness.send_signal(signal.SIGKILL)  # no chance to clean up
    harness.wait(timeout=10)
    run_id = run_id_in(line)
    assert labelled_containers(run_id), "the killed run should have left its containers behind"
    removed = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "cleanup", "--run-id", run_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert removed.returncode == 0, removed.stderr
    deadline = time.monotonic() + 30
    while labelled_containers(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert labelled_containers(run_id) == []
    assert docker_client().networks.list(filters={"label": f"{RUN_LABEL}={run_id}"}) == []


def test_missing_engine_fails_fast_with_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery_chaos.cli",
            "run",
            str(SCENARIOS / "03-ack-late-reject-child-kill.yaml"),
            "--backend",
            "docker",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "DOCKER_HOST": "unix:///nonexistent/docker.sock",
            "HOME": str(tmp_path),
        },
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "docker" in result.stderr


USER_IMAGE_DOCKERFILE = """
FROM celery-chaos/worker:latest
USER root
RUN /opt/venv/bin/pip uninstall -y celery-chaos \\
 && ! /opt/venv/bin/python -c "import celery_chaos" 2>/dev/null
COPY ingest_app /app/ingest_app
ENV PYTHONPATH=/app
USER chaos
"""


def test_users_image_without_the_agent_gets_it_mounted(tmp_path: Path) -> None:
    """A user's own image (celery + their app, no celery-chaos) runs without a rebuild."""
    context = tmp_path / "context"
    shutil.copytree(
        ROOT / "examples" / "ingest_app",
        context / "ingest_app",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (context / "Dockerfile").write_text(USER_IMAGE_DOCKERFILE)
    tag = f"celery-chaos-test/user-app:{uuid.uuid4().hex[:8]}"
    client = docker_client()
    client.images.build(path=str(context), tag=tag, rm=True)
    try:
        repro = subprocess.run(
            [sys.executable, "-m", "celery_chaos.cli", "repro", "--file", "ingest_app/repro.yaml",
             "--backend", "docker", "--worker-image", tag, "--report-dir", str(tmp_path / "r")],
            cwd=ROOT / "examples", capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert repro.returncode == 1, repro.stdout + repro.stderr
        assert "LOST" in repro.stdout  # the unsafe default config, observed through the agent
    finally:
        client.images.remove(tag, force=True)
