"""The storm generator (pure): the seed draws the whole schedule, kills aim at live workers, a
replacement follows each death, and a green pool's kill_child is drawn as a whole-worker kill.
Plus the checker's redelivery latency distribution."""

from __future__ import annotations

from typing import Any

import pytest
from celery_chaos.core.checker import TaskReport
from celery_chaos.core.distribution import redelivery_distribution
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.run.storm import expand


def storm(pool: str = "prefork", **storm: Any):
    spec = {
        "duration": 300,
        "tasks": 500,
        "faults": [
            {"kind": "kill_worker", "every": {"min": 5, "max": 15}},
            {"kind": "kill_child", "every": {"min": 10, "max": 20}},
            {"kind": "restart_broker", "every": {"min": 60, "max": 120}},
            {"kind": "partition", "every": {"min": 20, "max": 40}, "duration": 5},
        ],
    } | storm
    return parse_scenario(
        {
            "name": "storm",
            "description": "d",
            "workers": {"count": 2, "pool": pool},
            "workload": [
                {"task": "sample_tasks.tasks.work", "count": 3},
                {"task": "sample_tasks.tasks.send_email", "kwargs": {"to": "u{n}"}},
            ],
            "storm": spec,
            "timeout": 400,
        },
        "storm.yaml",
    )


def test_the_seed_replays_the_schedule() -> None:
    scenario = storm()
    assert expand(scenario, 3) == expand(scenario, 3)
    assert expand(scenario, 3).faults != expand(scenario, 4).faults


def test_tasks_spread_over_the_storm_by_weight() -> None:
    drawn = expand(storm(), 1).workload
    assert len(drawn) == 500 and all(item.count == 1 for item in drawn)
    times = [item.at for item in drawn]
    assert times == sorted(times) and times[0] >= 0 and times[-1] < 300
    emails = sum(1 for item in drawn if item.task.endswith("send_email"))
    assert 70 < emails < 180  # weight 1 of 4


def test_kills_aim_at_live_workers_and_each_death_is_replaced() -> None:
    faults = expand(storm(), 9).faults
    assert [f.when.at for f in faults] == sorted(f.when.at for f in faults)
    alive, next_index = {0, 1}, 2
    for fault in faults:
        if fault.kind == "start_worker":
            assert fault.wait_ready is False
            alive.add(next_index)
            next_index += 1
        elif fault.kind == "kill_worker":
            assert fault.target.worker in alive
            alive.remove(fault.target.worker)
        elif fault.kind == "partition":
            assert fault.target.worker in alive and fault.duration == 5
    kills = sum(1 for f in faults if f.kind == "kill_worker")
    starts = sum(1 for f in faults if f.kind == "start_worker")
    assert kills >= 15 and starts >= kills - 1  # the last death's replacement may be past the end


def test_green_pool_kill_child_is_drawn_as_a_whole_worker_kill() -> None:
    faults = expand(storm(pool="gevent"), 9).faults
    assert not any(f.kind == "kill_child" for f in faults)
    prefork = expand(storm(), 9).faults
    assert any(f.kind == "kill_child" for f in prefork)


def test_no_replacement_when_the_supervisor_is_off() -> None:
    faults = expand(storm(replace_after=None), 2).faults
    assert not any(f.kind == "start_worker" for f in faults)
    assert sum(1 for f in faults if f.kind == "kill_worker") == 2  # then nobody is left


def report(*latencies: float) -> TaskReport:
    task = TaskReport(task_id="t", task="x", index=0)
    task.redelivery_latencies = list(latencies)
    return task


def test_redelivery_distribution_percentiles() -> None:
    tasks = [report(*(i / 100 for i in range(1, 101)))]
    assert redelivery_distribution(tasks) == {"count": 100, "p50": 0.5, "p95": 0.95, "max": 1.0}
    assert redelivery_distribution([report()])["p50"] is None
    assert redelivery_distribution([report(0.3), report(0.1)])["max"] == pytest.approx(0.3)


def test_the_nightly_storm_is_ten_minutes_of_drawn_failures() -> None:
    from pathlib import Path

    from celery_chaos.core.scenario import load_file

    path = Path(__file__).resolve().parents[2] / "scenarios/nightly/storm-recommended-10min.yaml"
    nightly = load_file(path)
    drawn = expand(nightly, 2026)
    assert nightly.storm is not None and nightly.storm.duration == 600
    assert len(drawn.workload) == 1200
    kills = sum(1 for f in drawn.faults if f.kind == "kill_worker")
    assert 40 <= kills <= 120  # one every 5-15 s over 600 s
    assert any(f.kind == "restart_broker" for f in drawn.faults)
    assert nightly.expect["lost"] == 0  # the settings' promise; a red storm is a finding
