"""The default suite on a real ``rabbitmq-server``, quarter 3 of 4: each scenario meets its
expectations for the broker it ran on (``expect_when`` where RabbitMQ differs), strict, and leaves
no node behind (rabbitmq_suite_support.py)."""

from pathlib import Path

import pytest

from tests.integration.rabbitmq_suite_support import (
    QUARTERS,
    run_on_rabbitmq,
    skip_without_rabbitmq,
)

skip_without_rabbitmq()
pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", QUARTERS[2])
def test_default_suite_on_rabbitmq(name: str, tmp_path: Path) -> None:
    run_on_rabbitmq(name, tmp_path)
