"""A short storm on real workers: the nightly storm's mix, compressed to 40 seconds. The seed
draws the whole schedule; the checker reports totals and the redelivery latency distribution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.yaml_input import read_yaml
from celery_chaos.run.runner import RunOptions, run_scenario
from celery_chaos.run.storm import expand

NIGHTLY = Path(__file__).resolve().parents[2] / "scenarios" / "nightly"
pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]


def short_storm(seconds: float = 40, tasks: int = 120):
    data = read_yaml(NIGHTLY / "storm-recommended-10min.yaml")
    data["name"] = "storm-short"
    data["storm"] |= {"duration": seconds, "tasks": tasks}
    data["storm"]["faults"][0]["every"] = {"min": 5, "max": 10}  # kill_worker
    data["storm"]["faults"][2]["every"] = {"min": 15, "max": 25}  # restart_broker
    data["storm"]["faults"][3]["every"] = {"min": 8, "max": 15}  # drop_connections
    data["storm"]["faults"][4]["every"] = {"min": 10, "max": 20}  # partition
    data["timeout"] = seconds + 80
    return parse_scenario(data, "storm-short")


def test_same_seed_replays_the_same_storm() -> None:
    scenario = short_storm()
    first, again, other = expand(scenario, 5), expand(scenario, 5), expand(scenario, 6)
    assert first.faults == again.faults and first.workload == again.workload
    assert first.faults != other.faults


def test_short_storm_on_recommended_settings(tmp_path: Path) -> None:
    scenario = short_storm()
    result = run_scenario(scenario, RunOptions(report_dir=tmp_path), tmp_path, log=print)
    assert result.verdicts is not None, result.reason
    faults = [f for f in result.verdicts.faults if f["status"] == "injected"]
    kinds = {f["kind"] for f in faults}
    assert {"kill_worker", "start_worker", "restart_broker", "drop_connections"} <= kinds
    document = json.loads((result.report_dir / "result.json").read_text())
    totals, latency = document["totals"], document["redelivery_latency"]
    assert totals["tasks"] == 120 and totals["faults_injected"] == len(faults)
    # Whether a redelivery happens inside 40 s depends on the drawn schedule (a kill_child that
    # lands redelivers at once; a killed worker's tasks wait out the visibility timeout): the
    # distribution must count exactly the interrupted attempts that were run again.
    rerun = [
        a for t in result.verdicts.tasks for a in t.attempts
        if a.died is not None and any(b.started >= a.died for b in t.attempts)
    ]  # fmt: skip
    assert latency["count"] == len(rerun)
    if rerun:
        assert latency["p50"] <= latency["p95"] <= latency["max"]
    print(f"storm totals {totals}; redelivery latency {latency}")
    # Measured, not asserted: on these settings storms lose a task now and then (a message in
    # flight to a worker whose connection died: scenario 26; README "Measured, not assumed").
    # The nightly storm's expect (lost: 0) reports it; here the totals must agree with the tasks.
    outcomes = [task.outcome for task in result.verdicts.tasks]
    assert totals["lost"] == outcomes.count("lost")
    assert totals["duplicated"] == outcomes.count("duplicate_executions")
    assert totals["stuck_locks"] == 0
    assert (result.report_dir / "report.html").exists()


CHAOS_ENV_STORM = """
import json
from pathlib import Path

import pytest


@pytest.mark.chaos(
    celery={
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "broker_transport_options": {
            "visibility_timeout": 5, "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
        },
    },
    workers={"count": 2, "concurrency": 2},
)
def test_storm(chaos_env):
    ids = chaos_env.storm(
        [{"task": "sample_tasks.tasks.ingest_document",
          "kwargs": {"doc_id": "storm-{n}", "steps": 4, "step_seconds": 0.1}}],
        duration=12, tasks=30, replace_after=1,
        faults=[{"kind": "kill_worker", "every": {"min": 3, "max": 5}},
                {"kind": "kill_child", "every": {"min": 4, "max": 6}}],
    )
    assert len(ids) == 30 and chaos_env.dirty
    assert chaos_env.wait_quiescent(timeout=90)
    verdicts = chaos_env.verdicts()
    outcomes = [task.outcome for task in verdicts.tasks]
    assert len(outcomes) == 30 and "pending" not in outcomes
    injected = [f["kind"] for f in verdicts.faults if f["status"] == "injected"]
    assert injected.count("kill_worker") >= 2 and "start_worker" in injected
    Path("storm.json").write_text(json.dumps({"outcomes": outcomes, "injected": injected}))
"""


def test_chaos_env_storm_sends_and_strikes_on_the_tests_clock(pytester: pytest.Pytester) -> None:
    """A storm is expressible in a pytest test too: ``chaos_env.storm`` draws the tasks and the
    faults from the test's seed and ``wait_quiescent`` sends and fires them as they fall due,
    with replacement workers; every task reaches an outcome."""
    pytester.makepyfile(test_env_storm=CHAOS_ENV_STORM)
    result = pytester.runpytest_subprocess(
        "--chaos-report-dir", "out", "-p", "no:xdist", timeout=240
    )
    result.assert_outcomes(passed=1)
    measured = json.loads((pytester.path / "storm.json").read_text())
    print(f"chaos_env storm: {measured}")
