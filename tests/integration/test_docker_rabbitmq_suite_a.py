"""The default suite and the RabbitMQ scenarios on the docker backend with a RabbitMQ broker
container, first half (the second is test_docker_rabbitmq_suite_b.py, so ``--dist loadfile``
runs both halves side by side): each scenario meets its written expectations, as it does on a
local ``rabbitmq-server`` node."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.docker_rabbitmq_support import (
    HALVES,
    require_rabbitmq_image,
    run_on_rabbitmq,
)

pytestmark = [pytest.mark.docker, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _images() -> None:
    require_rabbitmq_image()


@pytest.mark.parametrize("name", HALVES[0])
def test_scenario_on_docker_rabbitmq(name: str, tmp_path: Path) -> None:
    run_on_rabbitmq(name, tmp_path)
