"""The docker groundwork, end to end: offline-built images and the compose lab.

Builds the images offline (cached after the first run), then checks what the docker backend
relies on: the worker image runs the project as a non-root user, a memory limit ends in an OOM
kill that Docker reports, and the compose stack reproduces a worker-death incident: a task whose
worker is ``docker kill``-ed mid-run is redelivered (acks_late + reject_on_worker_lost) and
completes. No Docker engine: skipped, except on CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery_chaos.placements.docker.images import build_images, docker_client, engine_available

from tests.integration.docker_support import unavailable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
HISTORY_KEY = "chaos:history"
WORKERS = ("worker1", "worker2")
# Redelivery within seconds instead of the default hour: a short visibility timeout and an
# unacked sweep every second (kombu >= 5.7 options; older kombu ignores them).
FAST_RESTORE_CONFIG = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "broker_transport_options": {
        "visibility_timeout": 8,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
}

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


def compose_command() -> list[str]:
    """docker-compose 1.29 (Debian) when present, else the `docker compose` plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if shutil.which("docker") and probe.returncode == 0:
        return ["docker", "compose"]
    unavailable("neither docker-compose nor the docker compose plugin is installed")
    return []


def wait_for(what: str, probe: Callable[[], Any], deadline: float = 60.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {deadline:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    ok, reason = engine_available()
    if not ok:
        unavailable(reason)
    return build_images(offline=True, project_root=ROOT, log=lambda line: print(line))


class Stack:
    """One compose project (unique name) with helpers to read the ledger and kill workers."""

    def __init__(self, images: dict[str, str], override: Path) -> None:
        self.name = f"chaostest{uuid.uuid4().hex[:10]}"
        self.files = ["-f", str(COMPOSE_FILE), "-f", str(override)]
        self.env = {**os.environ, "WORKER_IMAGE": images["worker"], "REDIS_IMAGE": images["redis"]}
        self.command = compose_command()
        self.docker = docker_client()

    def compose(self, *args: str) -> str:
        command = [*self.command, "-p", self.name, *self.files, *args]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{' '.join(args)} failed: {result.stderr[-2000:]}"
        return result.stdout

    def redis(self, service: str) -> redis.Redis:
        host, port = self.compose("port", service, "6379").strip().rsplit(":", 1)
        return redis.Redis(host=host, port=int(port), socket_timeout=10)

    def container(self, service: str) -> Any:
        labels = [
            f"com.docker.compose.project={self.name}",
            f"com.docker.compose.service={service}",
        ]
        (found,) = self.docker.containers.list(all=True, filters={"label": labels})
        return found


@pytest.fixture
def stack(images: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    override = tmp_path / "docker-compose.override.yml"
    config = json.dumps(FAST_RESTORE_CONFIG)
    services = {name: {"environment": {"CHAOS_CELERY_CONFIG": config}} for name in WORKERS}
    override.write_text(json.dumps({"version": "2.4", "services": services}))  # JSON is YAML
    lab = Stack(images, override)
    try:
        lab.compose("up", "-d")
        yield lab
    finally:
        lab.compose("logs", "--no-color", "--tail", "40")
        lab.compose("down", "-v", "--timeout", "2")


def history(ledger: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in ledger.lrange(HISTORY_KEY, 0, -1)]


def events(ledger: redis.Redis, kind: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        event
        for event in history(ledger)
        if event["type"] == kind and all(event.get(k) == v for k, v in fields.items())
    ]


def ready_hosts(ledger: redis.Redis) -> set[str]:
    return {event.get("host") for event in events(ledger, "worker_ready")}


def test_worker_image_runs_the_project_as_non_root(images: dict[str, str]) -> None:
    script = (
        "celery --version && python -c 'import celery_chaos.sample_tasks.app, psutil'"
        " && id -u && ps -p 1"
    )
    output = docker_client().containers.run(
        images["worker"], ["sh", "-c", script], remove=True, network_mode="none"
    )
    version, uid, *_ = output.decode().splitlines()
    assert version.startswith("5.")
    assert uid != "0"


def test_memory_limit_ends_in_a_reported_oom_kill(images: dict[str, str]) -> None:
    grow = "x = bytearray(256 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    container = docker_client().containers.run(
        images["worker"],
        ["python", "-c", grow],
        detach=True,
        mem_limit="64m",
        memswap_limit="64m",
        network_mode="none",
    )
    try:
        exit_code = container.wait(timeout=60)["StatusCode"]
        container.reload()
        assert exit_code == 137
        assert container.attrs["State"]["OOMKilled"] is True
    finally:
        container.remove(force=True)


def test_killed_worker_task_is_redelivered_and_completes(stack: Stack) -> None:
    ledger = stack.redis("ledger")
    wait_for("worker_ready from both workers", lambda: ready_hosts(ledger) >= set(WORKERS))

    client = Celery(broker=f"redis://{stack.compose('port', 'broker', '6379').strip()}/0")
    kwargs = {"steps": 20, "step_seconds": 0.2}
    task_id = client.send_task(
        "sample_tasks.tasks.ingest_document", args=["doc-1"], kwargs=kwargs
    ).id
    (first,) = wait_for(
        "the first attempt", lambda: events(ledger, "attempt_start", task_id=task_id)
    )

    victim = stack.container(first["host"])
    victim.kill()  # SIGKILL to the worker's main process: the whole container dies
    victim.reload()
    assert victim.attrs["State"]["ExitCode"] == 137
    assert not events(ledger, "attempt_end", task_id=task_id, attempt=1)

    redelivered = wait_for(
        "the redelivered attempt",
        lambda: events(ledger, "attempt_start", task_id=task_id, attempt=2),
    )[0]
    assert redelivered["redelivered"] is True
    assert redelivered["host"] != first["host"]  # the survivor took it over
    done = wait_for(
        "the redelivered attempt to finish",
        lambda: events(ledger, "attempt_end", task_id=task_id, attempt=2),
    )[0]
    assert done["state"] == "SUCCESS"
    assert ledger.hget("app:doc:doc-1", "status") == b"done"

    stack.compose("start", first["host"])  # bring the killed worker back
    wait_for(
        f"{first['host']} to be ready again",
        lambda: len(events(ledger, "worker_ready", host=first["host"])) >= 2,
    )
