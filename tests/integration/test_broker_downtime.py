"""``restart_broker`` with ``duration`` on a real local Redis broker: the broker refuses
connections for at least that long, then answers again with its data (AOF) intact. Scenario 28
depends on it: a worker that restores its messages while the broker is still down crashes, one
that finds it back in time survives."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis
from celery_chaos.placements.local.placement import LocalPlacement

from tests.integration.scenario_support import workerless

pytestmark = pytest.mark.integration
DOWN_FOR = 1.5
PROBE_EVERY = 0.02


def longest_refusal(url: str, restarting: threading.Thread) -> float:
    """Ping the broker until the restart returned; the longest stretch of refused pings (s)."""
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    longest, refused_since = 0.0, None
    while restarting.is_alive():
        try:
            client.ping()
            refused_since = None
        except redis.ConnectionError:
            now = time.monotonic()
            refused_since = refused_since or now
            longest = max(longest, now - refused_since)
        time.sleep(PROBE_EVERY)
    return longest


def test_the_broker_stays_down_for_the_faults_duration(tmp_path: Path) -> None:
    with LocalPlacement(workerless("downtime", broker={"persistence": "aof"}), tmp_path) as backend:
        backend.start()
        client = redis.Redis.from_url(backend.broker.url)
        client.set("kept", "yes")
        details: list[str] = []
        restarting = threading.Thread(
            target=lambda: details.append(backend.restart_broker(down_for=DOWN_FOR))
        )
        restarting.start()
        refused = longest_refusal(backend.broker.url, restarting)
        restarting.join()
        assert details and details[0].endswith(f", down for {DOWN_FOR:g}s")
        assert refused >= DOWN_FOR - 2 * PROBE_EVERY, f"refused for only {refused:.2f}s"
        assert client.get("kept") == b"yes"
