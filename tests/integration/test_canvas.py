"""Workflows under worker death on real workers: a chain that stops halfway, a group member lost,
a chord whose callback never fires, a chain that recovers under acks late. Each scenario of the
default suite, checked for what a user relies on (which member ran, what never will)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult

from tests.integration.scenario_support import run

pytestmark = pytest.mark.integration


def by_path(result: ScenarioResult) -> dict[str, str]:
    (workflow,) = result.verdicts.workflows
    return {member["path"]: member["outcome"] for member in workflow.members}


def test_a_chain_stops_halfway_when_its_middle_step_is_killed(tmp_path: Path) -> None:
    result = run("10-chain-child-killed-defaults.yaml", tmp_path)
    first, middle, last = result.verdicts.tasks
    assert first.outcome == "ok"
    assert middle.outcome == "lost" and middle.failures == ["WorkerLostError"]
    assert last.outcome == "lost" and last.attempts == [] and last.in_broker == []
    assert result.verdicts.workflows[0].outcome == "broken"
    assert by_path(result) == {"chain[0]": "ok", "chain[1]": "lost", "chain[2]": "lost"}
    assert result.verdicts.counts["unexpected"] == 0  # every member id was known up front
    assert result.status == PASSED
    document = json.loads((result.report_dir / "result.json").read_text())
    assert document["verdicts"]["workflow_broken"] == 1
    assert [m["outcome"] for m in document["workflows"][0]["members"]] == ["ok", "lost", "lost"]
    page = (result.report_dir / "report.html").read_text()
    assert 'id="workflows"' in page and "chain[2]" in page


def test_a_group_member_killed_under_defaults_is_lost(tmp_path: Path) -> None:
    result = run("11-group-member-killed-defaults.yaml", tmp_path)
    assert by_path(result) == {"group[0]": "ok", "group[1]": "lost", "group[2]": "ok"}
    assert result.verdicts.workflows[0].outcome == "broken"
    assert result.status == PASSED


def test_a_chord_callback_never_fires_when_a_header_member_is_lost(tmp_path: Path) -> None:
    result = run("12-chord-header-lost-defaults.yaml", tmp_path)
    callback = result.verdicts.tasks[-1]
    assert callback.attempts == []  # the merge never ran, not even once
    assert by_path(result)["chord.body"] == "lost"
    assert result.verdicts.workflows[0].members[-1]["callback"] is True
    assert result.status == PASSED


def test_a_chain_completes_when_its_killed_step_is_redelivered(tmp_path: Path) -> None:
    result = run("13-chain-ack-late-kill-worker.yaml", tmp_path)
    first, middle, last = result.verdicts.tasks
    assert middle.outcome == "recovered" and middle.attempts[-1].redelivered
    # published by the rerun's success (before its attempt_end: Celery sends the next step
    # first), never by the killed attempt
    assert last.attempts[0].started > middle.attempts[-1].started > middle.attempts[0].died
    assert result.verdicts.workflows[0].outcome == "completed"
    assert result.status == PASSED


def test_a_revoke_is_forgotten_by_a_restarted_worker_without_state_db(tmp_path: Path) -> None:
    result = run("14-revoke-forgotten-on-restart.yaml", tmp_path)
    (task,) = result.verdicts.tasks
    assert "revoked" in task.labels and task.outcome == "ok"  # it ran although revoked
    assert task.attempts[0].worker.startswith("w1@")  # by the new worker, after the restart
    assert result.verdicts.revoked_ran == [task.task_id]
    assert result.status == PASSED


def test_a_revoke_survives_a_restart_with_worker_state_db(tmp_path: Path) -> None:
    result = run("15-revoke-kept-with-state-db.yaml", tmp_path)
    (task,) = result.verdicts.tasks
    assert task.attempts == [] and task.in_broker == []  # discarded, never run
    assert task.labels == ["revoked"] and result.verdicts.counts["revoked_but_ran"] == 0
    assert result.status == PASSED


def test_a_retry_held_by_a_killed_worker_waits_for_the_visibility_timeout(tmp_path: Path) -> None:
    result = run("16a-retry-countdown-held-by-killed-worker.yaml", tmp_path)
    (task,) = result.verdicts.tasks
    assert [a.state for a in task.attempts] == ["RETRY"]  # one attempt, not interrupted
    assert task.outcome == "pending" and task.in_broker  # the retry sits in the unacked set
    assert result.status == PASSED


def test_a_retry_held_by_a_killed_worker_is_restored_and_runs_once(tmp_path: Path) -> None:
    result = run("16b-retry-countdown-restored-after-visibility.yaml", tmp_path)
    (task,) = result.verdicts.tasks
    first, retry = task.attempts
    assert (first.state, retry.state) == ("RETRY", "SUCCESS")
    assert retry.worker.startswith("w1@")  # the replacement ran the retry the dead one held
    assert retry.started - first.ended >= 4.5  # not before its countdown of 5 seconds
    assert task.verdicts == ["ok", "retried"] and result.status == PASSED


def test_repro_aims_at_a_member_of_a_chain(tmp_path: Path) -> None:
    """`repro --workflow ... --member 1`: the middle step is killed, the chain stops."""
    step = "sample_tasks.tasks.step"
    chain = {"chain": [{"task": step, "kwargs": {"name": n, "seconds": 1.0, "steps": 10}}
                       for n in ("a", "b", "c")]}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "repro", "--app",
         "celery_chaos.sample_tasks.app:app", "--workflow", json.dumps(chain), "--member", "1",
         "--at", "checkpoint:step-5", "--report-dir", str(tmp_path), "--timeout", "20"],
        cwd=tmp_path, text=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # the chain did not come through
    assert "LOST" in done.stdout and "workflow (chain): workflow_broken" in done.stdout
    (path,) = {found.resolve() for found in tmp_path.glob("*/repro-*/result.json")}
    result = json.loads(path.read_text())
    middle = result["tasks"][1]
    assert middle["attempts"][0]["interrupted_by"] == 0  # the fault hit member 1, not another
    assert [m["outcome"] for m in result["workflows"][0]["members"]] == ["ok", "lost", "lost"]


def test_a_chord_callback_longer_than_the_visibility_timeout_runs_twice(tmp_path: Path) -> None:
    result = run("17-chord-callback-duplicated-visibility.yaml", tmp_path)
    *header, callback = result.verdicts.tasks
    assert [t.outcome for t in header] == ["ok", "ok"]
    assert callback.outcome == "duplicate_executions"
    assert {a.worker.split("@")[0] for a in callback.attempts} == {"w0", "w1"}  # both merged
    assert result.verdicts.workflows[0].reason.startswith("callback chord.body")
    assert result.status == PASSED


def test_a_chord_loses_its_callback_with_results_on_a_restarted_broker(tmp_path: Path) -> None:
    result = run("18a-chord-results-on-restarted-broker.yaml", tmp_path)
    *header, callback = result.verdicts.tasks
    assert [t.outcome for t in header] == ["ok", "ok"]  # all the header's work happened
    assert callback.attempts == [] and callback.in_broker == []  # the merge never came
    assert result.verdicts.workflows[0].outcome == "broken"
    assert result.status == PASSED


def test_a_chord_completes_with_results_off_the_restarted_broker(tmp_path: Path) -> None:
    result = run("18b-chord-results-on-ledger-broker-restart.yaml", tmp_path)
    *header, callback = result.verdicts.tasks
    assert callback.outcome == "ok"
    assert callback.attempts[0].started > max(t.attempts[-1].started for t in header)
    assert result.verdicts.workflows[0].outcome == "completed"
    assert result.status == PASSED


def test_an_autoretry_held_by_a_killed_worker_is_restored_and_runs_once(tmp_path: Path) -> None:
    result = run("16c-autoretry-held-by-killed-worker.yaml", tmp_path)
    (task,) = result.verdicts.tasks
    first, retry = task.attempts
    assert (first.state, retry.state) == ("RETRY", "SUCCESS")
    assert first.worker.startswith("w0@") and retry.worker.startswith("w1@")
    assert task.verdicts == ["ok", "retried"] and result.status == PASSED
