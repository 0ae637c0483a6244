"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery_chaos.placements.local.rabbitmq_shared import SharedRabbitMQ
from celery_chaos.placements.local.redis_server import RedisServer

from tests.integration.rabbitmq_suite_support import outlived


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server of the ledger's kind in the test's folder, stopped afterwards."""
    server = RedisServer("ledger", tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_rabbitmq() -> Iterator[SharedRabbitMQ]:
    """One RabbitMQ node for this test process's RabbitMQ scenarios, each in a vhost of its own
    (as a suite run shares one: placements/local/rabbitmq_shared.py), started at the first
    scenario that can use it. Once closed, none of its processes, folder or state file is left."""
    with SharedRabbitMQ() as shared:
        yield shared
        pids, state = (shared.node.pids() if shared.node else []), shared.state
    left = outlived(pids)
    assert not left, f"the shared RabbitMQ node outlived the session: {left}"
    assert state is None or not state.path.exists(), "its state file is left"
    assert shared.workdir is None or not shared.workdir.exists(), "its folder is left"


@pytest.fixture(scope="session")
def shared_rabbitmq_containers() -> Iterator[object]:
    """The docker placement's counterpart: one RabbitMQ container per image for this test
    process's docker RabbitMQ scenarios (placements/docker/rabbitmq_shared.py), each in a vhost
    of its own. Once closed, no container or network of it is left."""
    from celery_chaos.placements.docker.containers import RUN_LABEL, docker_client
    from celery_chaos.placements.docker.rabbitmq_shared import SharedRabbitMQContainers

    with SharedRabbitMQContainers() as shared:
        yield shared
        if shared.network is None:
            return  # no test started it (no docker here, or no image)
    client, label = docker_client(), {"label": f"{RUN_LABEL}={shared.id}"}
    assert client.containers.list(all=True, filters=label) == [], "a shared container is left"
    assert client.networks.list(filters=label) == [], "the shared network is left"
