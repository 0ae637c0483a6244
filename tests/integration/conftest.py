"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery_chaos.placements.local.redis_server import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server of the ledger's kind in the test's folder, stopped afterwards."""
    server = RedisServer("ledger", tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
