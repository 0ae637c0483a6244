"""``partition_one_way`` against a real worker: with one direction of its broker connections
held (the broker's replies, or the worker's own commands) and nothing closed, a SIGTERMed idle
worker never finishes its warm shutdown, so an eviction's grace runs out and SIGKILL ends it
(the warm-shutdown half of kombu#1733); healed within the grace, it exits on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.adhoc_support import run, work

pytestmark = pytest.mark.integration


def events(tmp_path: Path) -> list[dict[str, Any]]:
    (path,) = tmp_path.rglob("history.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def evict_while_held(tmp_path: Path, direction: str, heal: bool) -> list[dict[str, Any]]:
    """Hold ``direction`` of w0's connections, evict it (grace 6 s), heal 2 s later if asked;
    a replacement runs the one task, so the run has something to check."""
    faults: list[dict[str, Any]] = [
        {"kind": "partition_one_way", "direction": direction, "when": {"at": 1.0}},
        {"kind": "evict", "grace": 6, "when": {"at": 1.5}},
    ]
    if heal:
        faults.append({"kind": "heal", "when": {"at": 3.5}})
    faults.append({"kind": "start_worker", "wait_ready": False, "when": {"at": 4.5}})
    for fault in faults[:-1]:
        fault["target"] = {"worker": 0}
    result = run(
        tmp_path, workers={"count": 1}, workload=[work(0.2, 2, at=5.0)], faults=faults, timeout=15
    )
    assert result.verdicts.counts["ok"] == 1  # the replacement's connections are not held
    return events(tmp_path)


def w0_exit(history: list[dict[str, Any]]) -> dict[str, Any]:
    (first,) = [
        e for e in history if e["type"] == "worker_started" and e["worker"].startswith("w0")
    ]
    (exit,) = [e for e in history if e["type"] == "worker_exit" and e["worker"] == first["worker"]]
    return exit


@pytest.mark.parametrize("direction", ["to_worker", "to_broker"])
def test_warm_shutdown_never_ends_while_one_direction_is_held(
    tmp_path: Path, direction: str
) -> None:
    history = evict_while_held(tmp_path, direction, heal=False)
    (hold,) = [e for e in history if e["type"] == "fault" and e["kind"] == "partition_one_way"]
    assert f"held {direction.replace('_', ' ')}" in hold["detail"]
    (sigkill,) = [e for e in history if e["type"] == "fault" and e.get("stage") == "sigkill"]
    exit = w0_exit(history)
    assert exit["signal"] == 9 and exit["seq"] > sigkill["seq"]  # the grace ran out


def test_healed_within_the_grace_the_worker_exits_on_its_own(tmp_path: Path) -> None:
    history = evict_while_held(tmp_path, "to_worker", heal=True)
    (heal,) = [e for e in history if e["type"] == "fault" and e["kind"] == "heal"]
    assert not [e for e in history if e["type"] == "fault" and e.get("stage") == "sigkill"]
    exit = w0_exit(history)
    assert (exit["exitcode"], exit["signal"]) == (0, None) and exit["seq"] > heal["seq"]
