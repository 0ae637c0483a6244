"""Deploy-style worker deaths against real workers and real signals: ``evict`` (SIGTERM, then
SIGKILL once ``grace`` expired, without holding up the other faults), ``scale_down`` (the
busiest workers go), and ``workers.entrypoint`` (a shell that forwards no signal loses the task a
direct or ``exec`` worker keeps), on the local placement and, where the engine answers, docker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult
from celery_chaos.core.scenario import load_file, parse_scenario
from celery_chaos.placements.local import processes
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.adhoc_support import run, work
from tests.integration.docker_support import require_images
from tests.integration.scenario_support import run as run_suite

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def history(tmp_path: Path) -> list[dict[str, Any]]:
    (path,) = tmp_path.rglob("history.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def test_evict_kills_after_grace_without_holding_up_the_next_fault(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        workload=[work(seconds=6.0, steps=60)],
        faults=[
            {"kind": "evict", "grace": 2, "when": {"task": 0, "checkpoint": "step-2"}},
            {"kind": "start_worker", "wait_ready": False, "when": {"after_fault": 0, "delay": 0.2}},
        ],
    )
    events = history(tmp_path)
    faults = of_type(events, "fault")
    assert [(f["kind"], f.get("stage")) for f in faults] == [
        ("evict", None),
        ("start_worker", None),  # fired during the grace period, not after it
        ("evict", "sigkill"),
    ]
    sigterm, _, sigkill = faults
    assert sigterm["cause"] == "SIGTERM by evict fault"
    # never before the grace expired (offsets are rounded: 2.2175 - 0.2175 < 2 in floats)
    assert round(sigkill["offset"] - sigterm["offset"], 3) >= 2
    assert sigkill["cause"].startswith("SIGKILL by evict fault")
    (exit,) = [e for e in of_type(events, "worker_exit") if e["worker"] == sigterm["worker"]]
    assert exit["signal"] == 9 and exit["seq"] > sigkill["seq"]
    (task,) = result.verdicts.tasks
    assert task.attempts[0].exit_reason == sigkill["cause"]
    assert result.verdicts.counts["worker_crashes"] == 0  # the fault's doing, not a crash


def test_evict_within_grace_lets_the_worker_exit_on_its_own(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        workload=[work(seconds=1.0)],
        faults=[{"kind": "evict", "grace": 20, "when": {"task": 0, "checkpoint": "step-1"}}],
    )
    events = history(tmp_path)
    assert [f.get("stage") for f in of_type(events, "fault")] == [None]  # no SIGKILL
    (exit,) = of_type(events, "worker_exit")
    assert (exit["exitcode"], exit["signal"]) == (0, None)  # warm shutdown, done
    (task,) = result.verdicts.tasks
    assert task.outcome == "ok"
    assert result.verdicts.counts["worker_crashes"] == 0


def test_scale_down_removes_the_busiest_then_the_newest(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        workers={"count": 3, "concurrency": 1},
        workload=[work(seconds=4.0, steps=40)],
        faults=[
            {
                "kind": "scale_down",
                "count": 2,
                "grace": 1,
                "when": {"task": 0, "checkpoint": "step-2"},
            }
        ],
    )
    events = history(tmp_path)
    (start,) = of_type(events, "attempt_start")
    busiest = start["worker"]
    idle = sorted(
        (e["worker"] for e in of_type(events, "worker_started") if e["worker"] != busiest),
        key=lambda name: int(name.split("@")[0][1:]),
    )
    faults = of_type(events, "fault")
    sigterms = [f["worker"] for f in faults if f.get("stage") in (None, "sigterm")]
    assert sigterms == [busiest, idle[-1]]  # the busiest, then the newest of the idle ones
    exited = {e["worker"] for e in of_type(events, "worker_exit")}
    assert exited == {busiest, idle[-1]}  # the other worker stays
    killed = [f["worker"] for f in faults if f.get("stage") == "sigkill"]
    # The busiest outlives its 1 s grace with a 4 s task; an idle one may too: Celery's warm
    # shutdown took ~2 s after its last task in our runs.
    assert busiest in killed and set(killed) <= exited
    assert result.verdicts.counts["worker_crashes"] == 0
    assert result.verdicts.counts["lost"] == 1  # acknowledged at start (the defaults)


def test_evict_past_grace_under_acks_late_is_recovered(tmp_path: Path) -> None:
    result = run_suite("29-evict-ack-late-grace-shorter-than-task.yaml", tmp_path)
    (task,) = result.verdicts.tasks
    assert task.outcome == "recovered"
    first, second = task.attempts
    assert first.exit_reason.startswith("SIGKILL by evict fault")  # the grace ran out
    assert second.worker != first.worker  # the replacement's restore sweep reran it
    assert result.status == PASSED


def test_scale_down_of_the_busiest_loses_its_task_under_the_defaults(tmp_path: Path) -> None:
    result = run_suite("30-scale-down-busiest-defaults.yaml", tmp_path)
    (task,) = result.verdicts.tasks
    assert task.outcome == "lost"
    assert task.attempts[0].exit_reason.startswith("SIGKILL by scale_down fault")
    removed = [f["worker"] for f in result.verdicts.faults]
    assert set(removed) == {task.attempts[0].worker}  # the busy worker, not the idle one
    assert result.status == PASSED


@pytest.mark.parametrize(
    ("name", "lost"),
    [
        ("31a-shell-entrypoint-evict-loses-task.yaml", 1),
        ("31b-exec-entrypoint-evict-keeps-task.yaml", 0),
    ],
)
def test_entrypoint_decides_whether_the_deploy_loses_the_task(
    name: str, lost: int, tmp_path: Path
) -> None:
    result = run_suite(name, tmp_path)
    events = history(tmp_path)
    sigterm = of_type(events, "fault")[0]
    later = [e for e in of_type(events, "attempt_start") if e["seq"] > sigterm["seq"]]
    # The shell kept celery deaf: it took the task sent after the SIGTERM; exec: celery stopped
    # consuming, so the replacement ran it.
    assert [e["worker"] == sigterm["worker"] for e in later] == [bool(lost)]
    assert result.verdicts.counts["lost"] == lost
    stages = [f.get("stage") for f in of_type(events, "fault") if f["kind"] == "evict"]
    assert stages == ([None, "sigkill"] if lost else [None])
    assert result.status == PASSED


def still_running(pids: set[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return found


def test_shell_entrypoint_keeps_celery_in_the_group_the_harness_kills(tmp_path: Path) -> None:
    data = {"name": "shell", "description": "integration test", "timeout": 30}
    data |= {"workers": {"count": 1, "entrypoint": "shell"}, "workload": [work()]}
    backend = LocalPlacement(parse_scenario(data, "shell.yaml"), tmp_path, log=lambda _: None)
    backend.check_runnable()
    with backend:
        backend.start()
        (worker,) = backend.workers
        shell = psutil.Process(worker.handle.pid)
        assert shell.cmdline()[:2] == ["/bin/sh", "-c"]
        (celery,) = shell.children()  # the shell forked celery: it did not exec it
        assert "celery" in celery.cmdline()
        members = set(processes.group_members(worker.handle))
        assert {shell.pid, celery.pid} <= members and len(members) >= 3  # + pool children
        backend.kill_worker(worker)
        left = psutil.wait_procs(still_running(members - {shell.pid}), timeout=10)[1]
        assert left == []  # celery and its pool died with the shell's group (10 s deadline)
        assert processes.group_members(worker.handle) == []


@pytest.mark.docker
@pytest.mark.parametrize("entrypoint", ["shell", None])
def test_evict_on_docker(entrypoint: str | None, tmp_path: Path) -> None:
    """Shell: the container's PID 1 swallows the SIGTERM, docker kill after grace loses the task
    celery took meanwhile; direct: celery is PID 1, exits on its own, the replacement runs it."""
    require_images()
    data = {"name": "docker-evict", "description": "integration test", "timeout": 40}
    data |= {
        "workers": {"count": 1, "concurrency": 1, "entrypoint": entrypoint},
        "workload": [work(seconds=1.0, steps=10), work(seconds=6.0, steps=60, at=1.0)],
        "faults": [
            {"kind": "evict", "grace": 5, "when": {"task": 0, "checkpoint": "step-2"}},
            {"kind": "start_worker", "wait_ready": False, "when": {"after_fault": 0, "delay": 0.2}},
        ],
    }
    scenario = parse_scenario(json.loads(json.dumps(data)), "docker-evict.yaml")
    result: ScenarioResult = run_scenario(
        scenario, RunOptions("docker", tmp_path), tmp_path, log=lambda _: None
    )
    assert result.verdicts is not None, result.reason
    events = history(tmp_path)
    first = of_type(events, "worker_started")[0]
    assert (first["argv"][:2] == ["/bin/sh", "-c"]) == (entrypoint == "shell")  # PID 1
    stages = [f.get("stage") for f in of_type(events, "fault") if f["kind"] == "evict"]
    (exit,) = [e for e in of_type(events, "worker_exit") if e["worker"] == first["worker"]]
    if entrypoint == "shell":
        assert stages == [None, "sigkill"] and exit["signal"] == 9  # docker kill after grace
        assert [t.outcome for t in result.verdicts.tasks] == ["ok", "lost"]
    else:
        assert stages == [None] and (exit["exitcode"], exit["signal"]) == (0, None)
        assert [t.outcome for t in result.verdicts.tasks] == ["ok", "ok"]
    assert result.verdicts.counts["worker_crashes"] == 0


@pytest.mark.docker
def test_scale_down_of_the_busiest_container_loses_its_task(tmp_path: Path) -> None:
    """Scenario 30 on docker: the autoscaler removes the container running the task (evicted,
    then `docker kill` after grace), the idle one stays, and the task is lost as locally."""
    require_images()
    scenario = load_file(SCENARIOS / "30-scale-down-busiest-defaults.yaml")
    result = run_scenario(scenario, RunOptions("docker", tmp_path), tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    (task,) = result.verdicts.tasks
    assert task.outcome == "lost"
    assert task.attempts[0].exit_reason.startswith("SIGKILL by scale_down fault")
    assert {f["worker"] for f in result.verdicts.faults} == {task.attempts[0].worker}
    assert result.status == PASSED
