"""A seeded random trigger against real workers: the same seed replays the same fault schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.adhoc_support import ACK_LATE, run, work

pytestmark = pytest.mark.integration


def test_seeded_random_trigger_replays_the_same_schedule(tmp_path: Path) -> None:
    spec = {
        "celery": ACK_LATE,
        "workload": [work(seconds=2.0, steps=20)],
        "faults": [{"kind": "kill_child", "when": {"random": {"min": 0.3, "max": 1.2}}}],
    }
    first = run(tmp_path / "a", seed=1234, **spec)
    again = run(tmp_path / "b", seed=1234, **spec)
    assert first.schedule == again.schedule and first.seed == 1234
    for result in (first, again):
        assert result.verdicts.faults[0]["status"] == "injected"
        assert result.verdicts.tasks[0].outcome == "recovered"
