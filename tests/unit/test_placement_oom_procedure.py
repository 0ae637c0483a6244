"""The OOM procedure both placements share (Placement.oom), on stub primitives: the limit is set to
usage + headroom, the kill is awaited, and the limit is always lifted again. The real kernel and
engine OOM kills are proven in tests/integration (test_oom_kill_is_reported_and_recovered,
test_container_oom_kill_is_seen_and_recovered)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery_chaos.placements.base import Placement


def stub(memory_limit: str | None, kills_after_release: int) -> SimpleNamespace:
    """Primitives recording the limits set; the kill count rises once the task is released."""
    state = SimpleNamespace(limits=[], released=False)
    state.scenario = SimpleNamespace(workers=SimpleNamespace(memory_limit=memory_limit))
    state.oom_poll_interval = 0.001
    state.memory_usage = lambda _worker: 1000
    state.set_memory_limit = lambda _worker, limit: state.limits.append(limit)
    state.oom_kills = lambda _worker: kills_after_release if state.released else 0
    state.oom_witness = lambda _worker: "engine reported an OOM kill in w0"
    return state


def release(state: SimpleNamespace) -> None:
    state.released = True


def test_limit_is_usage_plus_headroom_then_lifted_to_the_scenarios_limit() -> None:
    state = stub(memory_limit="64MiB", kills_after_release=1)
    detail = Placement.oom(state, None, headroom=24, wait=5, release=lambda: release(state))
    assert state.limits == [1024, 64 * 1024**2]
    assert detail == (
        "engine reported an OOM kill in w0 (limit 1024 bytes, OOM kills 0->1); limit lifted"
    )


def test_no_kill_within_the_wait_is_said_and_the_limit_is_removed() -> None:
    state = stub(memory_limit=None, kills_after_release=0)
    detail = Placement.oom(state, None, headroom=24, wait=0.05, release=lambda: release(state))
    assert state.limits == [1024, None]  # None: no limit
    assert detail == "no OOM kill within 0.05s (limit 1024 bytes); limit lifted"


def test_limit_is_lifted_even_when_releasing_the_task_fails() -> None:
    state = stub(memory_limit=None, kills_after_release=1)

    def broken_release() -> None:
        raise ConnectionError("ledger gone")

    with pytest.raises(ConnectionError):
        Placement.oom(state, None, headroom=24, wait=5, release=broken_release)
    assert state.limits == [1024, None]
