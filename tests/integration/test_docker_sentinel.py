"""The Sentinel topology and ``partition_one_way`` on the docker placement, in real containers.

Sentinel: a master, a replica and three Sentinels are containers of the run's Redis image; the
worker container connects through ``sentinel://`` to the Sentinels' names, the harness to their
container IPs. The default suite's 33a runs with its written expectations, as on the local
placement (tests/integration/test_sentinel.py); 33b is not run here: its crash is timing-dependent
on docker (docs/how-to/deploys.md). ``partition_one_way``: the worker container
reaches the broker through its own proxy in the harness, which holds one direction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core.conclusion import ScenarioResult
from celery_chaos.core.scenario import load_file, parse_scenario
from celery_chaos.placements.docker.placement import RUN_LABEL, docker_client
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.adhoc_support import work
from tests.integration.docker_support import require_images
from tests.integration.scenario_support import failure_message
from tests.integration.sentinel_support import (
    assert_master_alive_failover,
    history,
    master_alive_spec,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
pytestmark = [pytest.mark.docker, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _images() -> None:
    require_images()


def run(tmp_path: Path, name: str | None = None, **spec: Any) -> ScenarioResult:
    """Run ``scenarios/<name>`` strict, or an ad hoc ``spec``, on docker; nothing of the run
    (container, network) may be left behind."""
    if name:
        scenario = load_file(SCENARIOS / name)
    else:
        data = {"name": "adhoc", "description": "integration test", "timeout": 30, **spec}
        scenario = parse_scenario(json.loads(json.dumps(data)), "adhoc.yaml")
    options = RunOptions(backend="docker", report_dir=tmp_path, strict=bool(name))
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    assert not result.unclaimed, failure_message(result)
    started = [e for e in history(tmp_path) if e["type"] == "worker_started"]
    run_id = started[0]["worker"].rpartition("@chaos-")[2]  # w0@chaos-<run id>
    left = docker_client().containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    assert not left, [c.name for c in left]
    return result


def switched(tmp_path: Path) -> bool:
    """Whether a Sentinel container logged the master's switch to the replica."""
    (log,) = tmp_path.rglob("logs/broker.log")  # every node's log, under its name
    text = log.read_text(errors="replace")
    return "== broker-sentinel-0 ==" in text and "+switch-master" in text


def test_worker_container_follows_the_sentinels_to_the_new_master(tmp_path: Path) -> None:
    result = run(tmp_path, "33a-sentinel-failover-defaults.yaml")
    assert switched(tmp_path)
    events = history(tmp_path)
    (fault,) = [e for e in events if e["type"] == "fault"]
    assert fault["kind"] == "failover" and "broker-master SIGKILLed (docker kill" in fault["detail"]
    assert not [e for e in events if e["type"] == "worker_exit"]  # the same worker, reconnected
    late = [t for t in result.verdicts.tasks if t.index in (1, 2)]
    assert [t.outcome for t in late] == ["ok", "ok"]  # sent after the promotion, consumed
    (log,) = tmp_path.rglob("worker-w0.log")
    assert "Connected to sentinel://" in log.read_text(errors="replace")


def test_sentinel_failover_with_the_master_alive_on_docker(tmp_path: Path) -> None:
    result = run(tmp_path, **master_alive_spec())
    assert switched(tmp_path)
    assert_master_alive_failover(result, tmp_path)


@pytest.mark.parametrize("heal", [False, True])
def test_one_way_hold_on_docker_keeps_warm_shutdown_from_ending(tmp_path: Path, heal: bool) -> None:
    """The broker's replies to w0's container held, then evict (grace 6 s): the container's
    warm shutdown never ends and docker kill comes at grace; healed 2 s later, it exits 0."""
    faults: list[dict[str, Any]] = [
        {"kind": "partition_one_way", "direction": "to_worker", "when": {"at": 1.0}},
        {"kind": "evict", "grace": 6, "when": {"at": 1.5}},
    ]
    faults += [{"kind": "heal", "when": {"at": 3.5}}] if heal else []
    for fault in faults:
        fault["target"] = {"worker": 0}
    faults.append({"kind": "start_worker", "wait_ready": False, "when": {"at": 4.5}})
    result = run(tmp_path, workers={"count": 1}, workload=[work(0.2, 2, at=5.0)], faults=faults)
    assert result.verdicts.counts["ok"] == 1  # the replacement's connections are not held
    events = history(tmp_path)
    (hold,) = [e for e in events if e["type"] == "fault" and e["kind"] == "partition_one_way"]
    assert "held to worker" in hold["detail"]
    (first,) = [e for e in events if e["type"] == "worker_started" and e["worker"][:2] == "w0"]
    (exit,) = [e for e in events if e["type"] == "worker_exit" and e["worker"] == first["worker"]]
    sigkills = [e for e in events if e["type"] == "fault" and e.get("stage") == "sigkill"]
    if heal:
        assert not sigkills and (exit["exitcode"], exit["signal"]) == (0, None)
    else:
        (sigkill,) = sigkills
        assert exit["signal"] == 9 and exit["seq"] > sigkill["seq"]  # the grace ran out
