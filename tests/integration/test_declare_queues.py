"""``broker.declare_queues`` on a real local RabbitMQ node: the backend declares the scenario's
extra queues as soon as the broker is up, and again after ``restart_broker``, because a
non-durable queue does not survive a crash of the node. (What RabbitMQ does with a dead letter
routed there is proven by the rabbitmq-quorum-dead-letter scenario.) Once started, the node's
metadata log was flushed (``rabbitmq_inspection.flush_metadata_log``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.brokers.rabbitmq_inspection import ctl_rows
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.placements.local.rabbitmq_server import RabbitMQUnavailable, find_rabbitmq

from tests.integration.scenario_support import workerless

try:
    find_rabbitmq()
except RabbitMQUnavailable as missing:
    pytest.skip(str(missing), allow_module_level=True)

pytestmark = pytest.mark.integration
QUEUES = {"chaos.parked": {"durable": True}, "chaos.scratch": {"durable": False}}


def declared_queues(backend: LocalPlacement) -> dict[str, bool]:
    """Queue name -> durable, as the node lists them."""
    rows = ctl_rows(backend.broker.access, "list_queues", "name", "durable")
    return {row["name"]: row["durable"] for row in rows}


def test_extra_queues_are_declared_at_start_and_again_after_a_broker_crash(
    tmp_path: Path,
) -> None:
    spec = workerless("declare", broker={"kind": "rabbitmq", "declare_queues": QUEUES})
    logged: list[str] = []
    with LocalPlacement(spec, tmp_path, log=logged.append) as backend:
        backend.start()
        assert declared_queues(backend) == {"chaos.parked": True, "chaos.scratch": False}
        assert not [line for line in logged if "not flushed" in line]
        assert "SIGKILLed and restarted" in backend.restart_broker()
        assert declared_queues(backend) == {"chaos.parked": True, "chaos.scratch": False}
