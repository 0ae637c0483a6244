"""What the docker RabbitMQ tests share: the scenario list, split into two halves so
``--dist loadfile`` runs them on two processes side by side, and one way to run a scenario.

The list: every RabbitMQ-only scenario, every default scenario whose file gives RabbitMQ its own
verdict (``expect_when: {broker: rabbitmq}``), and the kills most users start with. The whole
default suite on RabbitMQ containers (35 scenarios, about 5 min with ``--jobs 2``, 35/35 met when
measured) is the nightly workflow's ``rabbitmq`` job, to keep this test suite's wall time down;
locally it runs whole in test_rabbitmq_default_{1,2,3,4}.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import docker.errors
import pytest
from celery_chaos.core.conclusion import PASSED, failure_message
from celery_chaos.core.scenario import Scenario, load_suite, with_broker_kind
from celery_chaos.placements.docker.images import DEFAULT_RABBITMQ_IMAGE, DEFAULT_WORKER_IMAGE
from celery_chaos.placements.docker.placement import RUN_LABEL, docker_client
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.docker_support import require_images, unavailable

SUITE = Path(__file__).resolve().parents[2] / "scenarios"
GREEN_POOLS = ("gevent", "eventlet")


# The default suite minus the scenarios that pin `broker.kind: redis` (Redis transport
# mechanics), exactly as rabbitmq_suite_support.py selects it, then the RabbitMQ-only scenarios.
DEFAULT = [s for s in load_suite([SUITE]) if "kind" not in s.broker.model_fields_set]
FIRST_KILLS = {"defaults-child-kill", "ack-late-reject-child-kill", "revoke-kept-with-state-db"}


def _rabbitmq_verdicts_of_its_own(scenario: Scenario) -> bool:
    return any(rule.when.get("broker") == "rabbitmq" for rule in scenario.expect_when)


CI_DEFAULT = [s for s in DEFAULT if s.name in FIRST_KILLS or _rabbitmq_verdicts_of_its_own(s)]
SCENARIOS = {s.name: s for s in [*CI_DEFAULT, *load_suite([SUITE / "rabbitmq"])]}
NAMES = sorted(SCENARIOS)
HALVES = (NAMES[::2], NAMES[1::2])


def require_rabbitmq_image() -> None:
    require_images()
    have = {tag for image in docker_client().images.list() for tag in image.tags}
    if DEFAULT_RABBITMQ_IMAGE not in have:
        unavailable(f"image not built: {DEFAULT_RABBITMQ_IMAGE}")


def require_pool(pool: str) -> None:
    """Skip a gevent/eventlet scenario where the worker image lacks that library (the default
    image gets them as extras; until then the worker would die at start-up)."""
    if pool not in GREEN_POOLS:
        return
    try:
        docker_client().containers.run(
            DEFAULT_WORKER_IMAGE, ["python", "-c", f"import {pool}"], remove=True,
            network_mode="none", stderr=True,
        )  # fmt: skip
    except docker.errors.ContainerError:
        pytest.skip(f"workers.pool {pool}: not installed in {DEFAULT_WORKER_IMAGE}")


def run_on_rabbitmq(name: str, tmp_path: Path, shared: object = None) -> dict:
    """Run a scenario on the docker backend with a RabbitMQ broker (a vhost of the ``shared``
    container where it can, as a suite run does); it must pass with its own written
    expectations (``expect_when`` where RabbitMQ differs) and leave nothing of its run behind."""
    scenario = with_broker_kind(SCENARIOS[name], "rabbitmq")
    require_pool(scenario.workers.pool)
    run_ids: list[str] = []
    options = RunOptions(
        backend="docker",
        report_dir=tmp_path,
        on_finish=lambda b: run_ids.append(b.run_id),
        strict=True,  # a non-zero anomaly verdict the scenario does not name fails it
        backend_options={"shared_rabbitmq": shared},
    )
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    counts = result.verdicts and result.verdicts.counts
    assert result.status == PASSED, (failure_message(result), counts, result.expectations)
    assert result.versions["broker"].startswith("rabbitmq 3."), result.versions
    (run_id,) = run_ids
    left = docker_client().containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    assert left == [], "a container outlived its run"
    return json.loads((result.report_dir / "result.json").read_text())


def half_of_the_suite(half: int) -> Callable[[str, Path], None]:
    """The test of one half of the list (``half`` 0 or 1): one test file each, so that
    ``--dist loadfile`` gives the halves a process each."""

    @pytest.mark.parametrize("name", HALVES[half])
    def test_scenario_on_docker_rabbitmq(
        name: str, tmp_path: Path, shared_rabbitmq_containers: object
    ) -> None:
        require_rabbitmq_image()
        run_on_rabbitmq(name, tmp_path, shared_rabbitmq_containers)

    return test_scenario_on_docker_rabbitmq
