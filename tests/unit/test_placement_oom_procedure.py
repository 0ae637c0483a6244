"""The OOM procedure both placements share (Placement.oom), on stub primitives: the limit is set to
usage + headroom, the kill is awaited, and the limit is always lifted again. The real kernel and
engine OOM kills are proven in tests/integration (test_oom_kill_is_reported_and_recovered,
test_container_oom_kill_is_seen_and_recovered)."""

from __future__ import annotations

from typing import Any

import pytest
from celery_chaos.placements.base import Placement

from tests.unit.inline_scenario import scenario


class OomPrimitives:
    """The primitives ``Placement.oom`` calls (memory usage, limit, OOM kill count, witness),
    recording the limits set; the kill count rises once the task is released."""

    oom_poll_interval = 0.001

    def __init__(self, memory_limit: str | None, kills_after_release: int) -> None:
        self.scenario = scenario(workers={"memory_limit": memory_limit})
        self.limits: list[int | None] = []
        self.released = False
        self.kills_after_release = kills_after_release

    def memory_usage(self, _worker: Any) -> int:
        return 1000

    def set_memory_limit(self, _worker: Any, limit: int | None) -> None:
        self.limits.append(limit)

    def oom_kills(self, _worker: Any) -> int:
        return self.kills_after_release if self.released else 0

    def oom_witness(self, _worker: Any) -> str:
        return "engine reported an OOM kill in w0"


def release(state: OomPrimitives) -> None:
    state.released = True


def test_limit_is_usage_plus_headroom_then_lifted_to_the_scenarios_limit() -> None:
    state = OomPrimitives(memory_limit="64MiB", kills_after_release=1)
    detail = Placement.oom(state, None, headroom=24, wait=5, release=lambda: release(state))
    assert state.limits == [1024, 64 * 1024**2]
    assert detail == (
        "engine reported an OOM kill in w0 (limit 1024 bytes, OOM kills 0->1); limit lifted"
    )


def test_no_kill_within_the_wait_is_said_and_the_limit_is_removed() -> None:
    state = OomPrimitives(memory_limit=None, kills_after_release=0)
    detail = Placement.oom(state, None, headroom=24, wait=0.05, release=lambda: release(state))
    assert state.limits == [1024, None]  # None: no limit
    assert detail == "no OOM kill within 0.05s (limit 1024 bytes); limit lifted"


def test_limit_is_lifted_even_when_releasing_the_task_fails() -> None:
    state = OomPrimitives(memory_limit=None, kills_after_release=1)

    def broken_release() -> None:
        raise ConnectionError("ledger gone")

    with pytest.raises(ConnectionError):
        Placement.oom(state, None, headroom=24, wait=5, release=broken_release)
    assert state.limits == [1024, None]
