"""``rolling_deploy`` against real workers and real signals on the local placement: every old
worker is evicted only after a replacement reported ready, under acks_late nothing is lost when
the grace covers the running task (32a), old messages meet a new task signature and fail (32b),
a new version that cannot start halts the rollout, and the new workers get the new ``env``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery_chaos.core.conclusion import PASSED
from celery_chaos.core.scenario import load_file, parse_scenario
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.adhoc_support import run, work
from tests.integration.docker_support import require_images
from tests.integration.scenario_support import SCENARIOS
from tests.integration.scenario_support import run as run_suite

pytestmark = pytest.mark.integration


def history(tmp_path: Path) -> list[dict[str, Any]]:
    (path,) = {p.resolve() for p in tmp_path.rglob("history.jsonl")}
    return [json.loads(line) for line in path.read_text().splitlines()]


def of_type(events: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] in kinds]


def started(events: list[dict[str, Any]]) -> list[str]:
    return [e["worker"] for e in of_type(events, "worker_started")]


def running_on(events: list[dict[str, Any]], worker: str, seq: int) -> set[tuple[str, int]]:
    """The attempts on ``worker`` started and not ended before event ``seq``."""
    before = [e for e in events if e["seq"] < seq]
    starts = [e for e in of_type(before, "attempt_start") if e["worker"] == worker]
    ended = {(e["task_id"], e["attempt"]) for e in of_type(before, "attempt_end")}
    return {(e["task_id"], e["attempt"]) for e in starts} - ended


def test_every_old_worker_goes_only_after_a_replacement_is_ready(tmp_path: Path) -> None:
    result = run_suite("32a-rolling-deploy-ack-late.yaml", tmp_path)
    events = history(tmp_path)
    old, new = started(events)[:2], started(events)[2:]
    assert len(new) == 2  # surge 1: one replacement per old worker
    sigterms = [e for e in of_type(events, "fault") if e.get("stage") == "sigterm"]
    assert [e["worker"] for e in sigterms] == old  # one by one, in order
    for i, sigterm in enumerate(sigterms):
        ready = [e["worker"] for e in of_type(events, "worker_ready") if e["seq"] < sigterm["seq"]]
        assert set(new[: i + 1]) <= set(ready)  # its replacement was ready first
    assert {e["worker"] for e in of_type(events, "worker_exit")} == set(old)  # new ones serve on
    for kill in [e for e in of_type(events, "fault") if e.get("stage") == "sigkill"]:
        # Celery's warm shutdown may outlast the grace after its last task (~2 s in our runs),
        # but the grace covers any task: a SIGKILL never lands on a running attempt.
        assert running_on(events, kill["worker"], kill["seq"]) == set()
    assert {t.outcome for t in result.verdicts.tasks} == {"ok"}
    assert result.status == PASSED


def test_old_messages_meet_the_new_signature_and_fail(tmp_path: Path) -> None:
    result = run_suite("32b-rolling-deploy-signature-change.yaml", tmp_path)
    events = history(tmp_path)
    old, new = started(events)
    first, *queued = result.verdicts.tasks
    assert first.outcome == "ok" and first.attempts[-1].worker == old  # finished in its grace
    for task in queued:  # sent for version 1, run by version 2
        assert task.outcome == "lost" and [a.worker for a in task.attempts] == [new]
    failures = of_type(events, "task_failure")
    assert [f["exc_type"] for f in failures] == ["TypeError"] * len(queued)
    assert result.verdicts.counts["failed"] == len(queued) == 3
    assert result.status == PASSED


def test_a_new_version_that_cannot_start_halts_the_rollout(tmp_path: Path) -> None:
    bad = "celery_chaos.sample_tasks.no_such_version:app"
    result = run(
        tmp_path,
        workers={"count": 1, "concurrency": 1},
        workload=[work(seconds=2.0, steps=20), work(seconds=0.5, steps=5, at=1.0)],
        faults=[
            {
                "kind": "rolling_deploy",
                "grace": 1,
                "app": bad,
                "when": {"task": 0, "checkpoint": "step-1"},
            }
        ],
    )
    events = history(tmp_path)
    old, new = started(events)
    exits = {e["worker"]: e for e in of_type(events, "worker_exit")}
    assert set(exits) == {new} and exits[new]["exitcode"] != 0  # the new version died at start
    assert not of_type(events, "worker_ready")[1:]  # only the old worker was ever ready
    assert [e.get("stage") for e in of_type(events, "fault")] == [None]  # nobody was evicted
    assert {a.worker for t in result.verdicts.tasks for a in t.attempts} == {old}
    assert [t.outcome for t in result.verdicts.tasks] == ["ok", "ok"]


def test_new_workers_get_the_new_env(tmp_path: Path) -> None:
    data = {"name": "env", "description": "integration test", "timeout": 30}
    data |= {"workers": {"count": 1, "env": {"RELEASE": "1", "KEEP": "yes"}}}
    data |= {"workload": [work()]}
    backend = LocalPlacement(parse_scenario(data, "env.yaml"), tmp_path, log=lambda _: None)
    backend.check_runnable()
    with backend:
        backend.start()
        backend.deploy_version(None, {"RELEASE": "2"})
        fresh = backend.start_worker()
        old, new = (psutil.Process(w.handle.pid).environ() for w in backend.workers)
        assert backend.worker_ready(fresh)
        assert (old["RELEASE"], new["RELEASE"]) == ("1", "2")
        assert new["KEEP"] == "yes"  # the rest of workers.env stays


@pytest.mark.docker
def test_rolling_deploy_on_docker_replaces_every_container(tmp_path: Path) -> None:
    """The same rollout with containers: each old container gets its SIGTERM only after its
    replacement is ready, and no task is lost."""
    require_images()
    scenario = load_file(SCENARIOS / "32a-rolling-deploy-ack-late.yaml")
    result = run_scenario(scenario, RunOptions("docker", tmp_path), tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    events = history(tmp_path)
    old, new = started(events)[:2], started(events)[2:]
    sigterms = [e for e in of_type(events, "fault") if e.get("stage") == "sigterm"]
    assert [e["worker"] for e in sigterms] == old and len(new) == 2
    for i, sigterm in enumerate(sigterms):
        ready = [e["worker"] for e in of_type(events, "worker_ready") if e["seq"] < sigterm["seq"]]
        assert set(new[: i + 1]) <= set(ready)
    assert {t.outcome for t in result.verdicts.tasks} == {"ok"}
    assert result.verdicts.counts["worker_crashes"] == 0


@pytest.mark.docker
def test_signature_change_on_docker(tmp_path: Path) -> None:
    """Scenario 32b with containers (the worker image carries the package's sample_tasks, so
    version 2 of the app too): the old messages fail on the new code as they do locally."""
    require_images()
    scenario = load_file(SCENARIOS / "32b-rolling-deploy-signature-change.yaml")
    result = run_scenario(scenario, RunOptions("docker", tmp_path), tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    failures = of_type(history(tmp_path), "task_failure")
    assert [f["exc_type"] for f in failures] == ["TypeError"] * 3
    assert result.verdicts.counts["failed"] == 3 and result.verdicts.counts["ok"] == 1
    assert result.status == PASSED
