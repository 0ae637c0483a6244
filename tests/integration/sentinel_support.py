"""What the Sentinel tests share across placements: the broker spec, the history reader and the
``how: sentinel`` failover case (the master alive), run the same way on local and docker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from celery_chaos.core.conclusion import ScenarioResult

from tests.integration.adhoc_support import work

SENTINEL = {"kind": "redis", "topology": "sentinel"}


def history(tmp_path: Path) -> list[dict[str, Any]]:
    (path,) = tmp_path.rglob("history.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def master_alive_spec() -> dict[str, Any]:
    """A 3 s task, failed over by ``SENTINEL FAILOVER`` at its step 3, and two tasks sent after."""
    return {
        "broker": SENTINEL,
        "workers": {"count": 1, "concurrency": 2},
        "workload": [work(seconds=3, steps=30), work(0.5, 5, at=6.0), work(0.5, 5, at=6.5)],
        "faults": [
            {"kind": "failover", "how": "sentinel", "when": {"task": 0, "checkpoint": "step-3"}}
        ],
    }


def assert_master_alive_failover(result: ScenarioResult, tmp_path: Path) -> None:
    """The demotion was asked of the Sentinels and no task was lost or left pending."""
    (fault,) = [e for e in history(tmp_path) if e["type"] == "fault"]
    assert fault["detail"].startswith("SENTINEL FAILOVER")
    assert result.verdicts is not None
    assert result.verdicts.counts["ok"] == 3
    assert result.verdicts.counts["lost"] == result.verdicts.counts["pending"] == 0
