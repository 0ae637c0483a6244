"""The default suite on the local backend: real redis-server, real celery workers, real signals,
real kernel OOM kills. Each test checks what a user relies on, from the recorded history."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult
from celery_chaos.core.scenario import load_file
from celery_chaos.placements.local.cgroups import CgroupUnavailable, MemoryCgroup
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.scenario_support import SCENARIOS, run

pytestmark = pytest.mark.integration


def outcomes(result: ScenarioResult) -> list[str]:
    return [task.outcome for task in result.verdicts.tasks]


def test_defaults_lose_a_killed_task(tmp_path: Path) -> None:
    result = run("01-defaults-child-kill.yaml", tmp_path)
    killed, other = result.verdicts.tasks
    assert killed.outcome == "lost" and len(killed.attempts) == 1
    assert killed.attempts[0].exit_reason == "SIGKILL by kill_child fault"
    assert killed.in_broker == []  # acked before it ran: the broker has forgotten it
    assert killed.failures == ["WorkerLostError"]  # reported, once the worker gave up waiting
    assert other.outcome == "ok"
    assert result.status == PASSED


def test_acks_late_without_reject_fails_with_worker_lost(tmp_path: Path) -> None:
    result = run("02-ack-late-no-reject-child-kill.yaml", tmp_path)
    killed = result.verdicts.tasks[0]
    assert killed.outcome == "lost" and "failed" in killed.labels
    assert killed.failures == ["WorkerLostError"]
    assert result.status == PASSED


def test_acks_late_with_reject_recovers_once_and_releases_lock(tmp_path: Path) -> None:
    result = run("03-ack-late-reject-child-kill.yaml", tmp_path)
    killed = result.verdicts.tasks[0]
    assert killed.outcome == "recovered"
    assert [a.state for a in killed.attempts] == [None, "SUCCESS"]
    assert killed.attempts[1].redelivered is True
    assert outcomes(result).count("ok") == 2
    assert result.verdicts.counts["stuck_locks"] == 0 and result.verdicts.locks == []
    assert result.status == PASSED


def test_worker_kill_recovers_with_fast_restore(tmp_path: Path) -> None:
    result = run("04a-ack-late-kill-worker-fast-restore.yaml", tmp_path)
    assert outcomes(result) == ["recovered", "recovered"]
    for task in result.verdicts.tasks:
        assert task.attempts[0].worker != task.attempts[1].worker  # rerun on the replacement
    assert result.status == PASSED


def test_worker_kill_with_default_visibility_is_pending_not_lost(tmp_path: Path) -> None:
    result = run("04b-ack-late-kill-worker-default-visibility.yaml", tmp_path)
    assert outcomes(result) == ["pending", "pending"]
    assert all(task.in_broker == ["unacked"] for task in result.verdicts.tasks)
    assert result.status == PASSED


def test_short_visibility_timeout_duplicates_non_idempotent_effects(tmp_path: Path) -> None:
    result = run("05-visibility-shorter-than-task.yaml", tmp_path)
    effects = {effect.key: effect for effect in result.verdicts.effects}
    assert effects["email:user-0@example.com"].applied >= 2
    assert effects["welcome-1"].applied == 1 and effects["welcome-1"].attempted >= 2
    assert outcomes(result) == ["duplicate_executions", "duplicate_executions"]
    assert result.status == PASSED


def test_killed_lock_holder_leaves_stuck_lock(tmp_path: Path) -> None:
    result = run("06-lock-killed-defaults.yaml", tmp_path)
    (lock,) = result.verdicts.locks
    assert lock.name == "doc:invoice-7" and lock.stuck
    assert lock.owner == result.verdicts.tasks[0].task_id
    assert result.status == PASSED


def _cgroup_available() -> str | None:
    try:
        MemoryCgroup.create("celery-chaos-test-probe").remove()
    except CgroupUnavailable as error:
        return str(error)
    return None


def test_oom_kill_is_reported_and_recovered(tmp_path: Path) -> None:
    reason = _cgroup_available()
    if reason:
        pytest.skip(f"no writable memory cgroup: {reason}")
    result = run("07-oom-ack-late.yaml", tmp_path)
    task = result.verdicts.tasks[0]
    assert task.outcome == "recovered"
    assert task.attempts[0].exit_reason.startswith("oom_kill")
    assert "OOM killer fired" in result.verdicts.faults[0]["detail"]
    assert result.status == PASSED


def test_poison_message_is_a_redelivery_loop(tmp_path: Path) -> None:
    """Redis never drops a redelivered message, so once more deliveries than the threshold died
    (5, then the 7th started) the run ends there instead of at its 40 s timeout."""
    result = run("08-poison-reject.yaml", tmp_path)
    task = result.verdicts.tasks[0]
    assert "redelivery_loop" in task.labels and len(task.attempts) >= 7
    assert task.outcome == "pending"
    assert result.status == PASSED
    assert result.end_reason == "redelivery_loop"
    (path,) = tmp_path.rglob("history.jsonl")
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["reason"] for e in events if e["type"] == "run_end"] == ["redelivery_loop"]


def test_broker_restart_without_persistence_loses_queued_tasks(tmp_path: Path) -> None:
    result = run("09a-broker-restart-no-persistence.yaml", tmp_path)
    assert outcomes(result) == ["lost"] * 3
    assert all(task.attempts == [] for task in result.verdicts.tasks)
    assert result.status == PASSED


def test_broker_restart_with_aof_keeps_queued_tasks(tmp_path: Path) -> None:
    result = run("09b-broker-restart-aof.yaml", tmp_path)
    assert outcomes(result) == ["ok"] * 3
    assert result.status == PASSED


def test_on_finish_sees_stopped_workers_and_a_live_ledger(tmp_path: Path) -> None:
    """The hook repro's probes use: after the run, before teardown. The workers can change
    nothing any more: frozen, then SIGKILLed by the barrier that lets the history be read
    (run.barrier), so the main process has exited with signal 9."""
    seen: dict[str, object] = {}

    def on_finish(backend) -> None:
        seen["ledger_answers"] = backend.ledger.client.ping()
        seen["worker_state"] = backend.workers[0].handle.poll()

    scenario = load_file(SCENARIOS / "09b-broker-restart-aof.yaml")
    options = RunOptions(report_dir=tmp_path, on_finish=on_finish, strict=True)
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    assert result.status == PASSED, result.reason or result.unclaimed
    assert seen == {"ledger_answers": True, "worker_state": -signal.SIGKILL}


@pytest.mark.parametrize(
    "name", ["19-cold-shutdown-soft-timeout.yaml", "20-kill-worker-restore-cadence.yaml"]
)
def test_version_dependent_scenarios_meet_the_rule_for_the_installed_versions(
    tmp_path: Path, name: str
) -> None:
    """Their `expect_when` rules pick the expectation for the installed Celery/Kombu (the matrix
    tests run them on other versions)."""
    result = run(name, tmp_path)
    assert result.status == PASSED, (result.reason, result.expectations)
