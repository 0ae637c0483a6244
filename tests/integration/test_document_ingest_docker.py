"""examples/document_ingest on the docker backend: the example's own Dockerfile (the default
worker image plus the example), a PostgreSQL container, worker containers whose pool process is
SIGKILLed mid-parse; the same invariants catch the stuck row under Celery's defaults and hold
with acks_late + reject_on_worker_lost and the one-transaction task."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult, failure_message
from celery_chaos.core.scenario import load_file
from celery_chaos.placements.docker.images import DEFAULT_POSTGRES_IMAGE, docker_client
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.docker_support import require_images, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = Path("examples") / "document_ingest"
TAG = "celery-chaos-test/document-ingest-worker:latest"


@pytest.fixture(scope="module")
def worker_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example's Dockerfile built on a context holding only what it copies."""
    require_images()
    client = docker_client()
    if DEFAULT_POSTGRES_IMAGE not in {t for image in client.images.list() for t in image.tags}:
        unavailable(f"image not built: {DEFAULT_POSTGRES_IMAGE}")
    context = tmp_path_factory.mktemp("context")
    for name in ("Dockerfile", "__init__.py", "app.py"):
        (context / EXAMPLE).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / EXAMPLE / name, context / EXAMPLE / name)
    client.images.build(path=str(context), dockerfile=str(EXAMPLE / "Dockerfile"), tag=TAG)
    return TAG


def run(file: str, tmp_path: Path, image: str) -> ScenarioResult:
    scenario = load_file(ROOT / EXAMPLE / "scenarios" / file)
    options = RunOptions(
        backend="docker", report_dir=tmp_path, strict=True, backend_options={"worker_image": image}
    )
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    assert result.status == PASSED, failure_message(result)
    return result


def values(result: ScenarioResult) -> dict[str, tuple[float, bool]]:
    assert result.verdicts is not None
    return {i["name"]: (i["value"], i["held"]) for i in result.verdicts.invariants}


def test_the_stuck_document_on_docker(tmp_path: Path, worker_image: str) -> None:
    result = run("01-defaults.yaml", tmp_path, worker_image)
    assert values(result) == {"no-stuck-document": (1, False), "every-document-parsed": (1, False)}
    killed = result.verdicts.tasks[0] if result.verdicts else None
    assert killed is not None and killed.outcome == "lost"
    assert [a.last_checkpoint for a in killed.attempts] == ["ocr"]


def test_the_safe_settings_and_task_on_docker(tmp_path: Path, worker_image: str) -> None:
    result = run("05-idempotent.yaml", tmp_path, worker_image)
    assert values(result) == {"no-stuck-document": (0, True), "every-document-parsed": (0, True)}
    killed = result.verdicts.tasks[0] if result.verdicts else None
    assert killed is not None and killed.outcome == "recovered"
    assert [a.state for a in killed.attempts] == [None, "SUCCESS"]
