"""services.postgres, setup steps and invariants on the docker placement: a real PostgreSQL
container (the offline Debian image or the registry's postgres:15) on the run's network, worker
containers that write rows to it via DATABASE_URL, and nothing left once the run is over."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery_chaos.placements import base
from celery_chaos.placements.docker.containers import RUN_LABEL
from celery_chaos.placements.docker.images import DEFAULT_POSTGRES_IMAGE, docker_client

from tests.integration import services_support as support
from tests.integration.docker_support import require_images, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(autouse=True)
def _images() -> None:
    require_images()
    have = {tag for image in docker_client().images.list() for tag in image.tags}
    if DEFAULT_POSTGRES_IMAGE not in have:
        unavailable(f"image not built: {DEFAULT_POSTGRES_IMAGE}")


@pytest.fixture
def run_id(monkeypatch: pytest.MonkeyPatch) -> str:
    """The placement's run id, fixed in advance so the test can look for the run's leftovers
    by its label (only the placement module's ``uuid`` is replaced)."""
    known = uuid.uuid4()
    monkeypatch.setattr(base, "uuid", SimpleNamespace(uuid4=lambda: known))
    return known.hex[:10]


def _leftovers(run_id: str) -> list[str]:
    """Containers and networks labelled with the run that are still there."""
    client = docker_client()
    selector = {"label": f"{RUN_LABEL}={run_id}"}
    found = client.containers.list(all=True, filters=selector)
    return [c.name for c in found] + [n.name for n in client.networks.list(filters=selector)]


def test_worker_containers_write_rows_to_the_runs_postgres_container(tmp_path: Path, run_id: str):
    scene = support.postgres_rows(
        "pg-rows-docker",
        setup=[
            {"sql": support.ROWS_TABLE},
            {"run": "python -c \"import os; print(os.environ['DATABASE_URL'])\" > url.txt"},
        ],
    )
    result = support.run(scene, tmp_path, backend="docker")
    judged = support.invariant(result, "one-row-per-task")
    assert judged["value"] == 3 and judged["held"], judged
    url = (result.report_dir / "work" / "url.txt").read_text().strip()
    assert url.startswith("postgresql://chaos:chaos@chaos-") and url.endswith(":5432/app"), url
    assert (
        "ready to accept connections" in (result.report_dir / "logs" / "postgres.log").read_text()
    )
    assert run_id in url and not _leftovers(run_id)


def test_a_failing_setup_container_is_not_runnable_with_its_output(tmp_path: Path, run_id: str):
    scene = support.scenario(
        "setup-fails-docker",
        services={"postgres": {}},
        setup=[{"run": "echo 'no such table: documents' >&2; exit 4"}],
        workload=[{"task": "sample_tasks.tasks.record_row"}],
    )
    result = support.run(scene, tmp_path, backend="docker")
    support.assert_not_runnable(result, "setup[0].run", "exit 4", "no such table: documents")
    assert not _leftovers(run_id)  # the setup container and the postgres one included


def test_a_postgres_container_that_cannot_start_is_not_runnable(tmp_path: Path, run_id: str):
    """A PostgreSQL image whose server exits at once (the Redis image runs no postgres)."""
    from celery_chaos.placements.docker.images import DEFAULT_REDIS_IMAGE

    scene = support.scenario(
        "pg-bad-image",
        services={"postgres": {"image": DEFAULT_REDIS_IMAGE}},
        workload=[{"task": "sample_tasks.tasks.record_row"}],
    )
    result = support.run(scene, tmp_path, backend="docker")
    support.assert_not_runnable(result, "services.postgres", DEFAULT_REDIS_IMAGE)
    assert not _leftovers(run_id)


def test_app_redis_container_and_the_mounted_working_directory(tmp_path: Path, run_id: str):
    """The setup container reaches the app's Redis by REDIS_URL; worker containers write files
    to a relative path, which land in the run's ``work`` folder on the host."""
    script = "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL']).set('lock:doc:1', 1)"
    scene = support.scenario(
        "app-redis-docker",
        services={"redis": {}},
        setup=[{"run": f'python -c "{script}"'}],
        workload=[{"task": "sample_tasks.tasks.write_file", "count": 2}],
        invariants=[
            {"name": "locks", "redis": "lock:doc:*", "expect": 1},
            {"name": "files", "path": "out/*.txt", "expect": 2},
        ],
    )
    result = support.run(scene, tmp_path, backend="docker")
    assert support.invariant(result, "locks")["value"] == 1
    assert support.invariant(result, "files")["value"] == 2
    assert len(list((result.report_dir / "work" / "out").glob("*.txt"))) == 2
    assert not _leftovers(run_id)
