"""Workers are started the way teams start them (docs/worker-command.md), proven on real
``celery worker`` processes: the live process's command line (from /proc, via psutil) has none of
the ``--without-*`` switches by default and carries a scenario's ``workers.args`` when given, and
result.json lists the same command; and, with Celery's defaults (its worker heartbeat on), a
threads-pool worker given SIGTERM while it runs one task hands its prefetched messages back to the
queue instead of starting one of them while it dies (celery#10180, fixed in Celery 5.7)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery_chaos.core import history as h
from celery_chaos.core.scenario import Scenario, parse_scenario
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.run.runner import RunOptions, run_scenario

pytestmark = pytest.mark.integration
TEAM_ARGS = ["-O", "fair", "--prefetch-multiplier", "1", "--without-mingle"]
WITHOUT = ("--without-gossip", "--without-mingle", "--without-heartbeat")
ROOT = Path(__file__).resolve().parents[2]


def scenario(name: str, workers: dict[str, Any], **more: Any) -> Scenario:
    data = {"name": name, "description": f"{name} (integration test)", "workers": workers}
    data |= {"workload": [{"task": "sample_tasks.tasks.work", "kwargs": {"seconds": 0.1}}]}
    return parse_scenario(data | more, f"{name}.yaml")


def live_command(spec: Scenario, run_dir: Path) -> tuple[list[str], list[str], str]:
    """Start the scenario's one worker; its command line as the kernel reports it, the argv of
    its ``worker_started`` event, and its log once it is ready."""
    with LocalPlacement(spec, run_dir) as backend:
        backend.start()  # returns once the worker reported worker_ready
        assert backend.ledger is not None
        worker = backend.workers[0]
        live = psutil.Process(worker.handle.pid).cmdline()
        started = [e for e in backend.ledger.read_from(0) if e["type"] == h.WORKER_STARTED]
        log = (run_dir / "logs" / "worker-w0.log").read_text()
        assert started[0]["worker"] == worker.name
        return live, started[0]["argv"], log


def test_default_worker_runs_with_celerys_defaults(tmp_path: Path) -> None:
    live, recorded, log = live_command(scenario("defaults", {"count": 1}), tmp_path)
    assert recorded == live
    assert not [arg for arg in live if arg.startswith("--without")], live
    assert live[live.index("-P") + 1] == "prefork" and live[live.index("-c") + 1] == "2"
    assert "mingle: searching for neighbors" in log  # Celery's own start-up: mingle ran


def test_workers_args_reach_the_live_worker_and_result_json(tmp_path: Path) -> None:
    spec = scenario("team-args", {"count": 1, "args": ["-P", "threads", "-c", "3", *TEAM_ARGS]})
    live, recorded, log = live_command(spec, tmp_path / "live")
    assert recorded == live
    assert live[-len(TEAM_ARGS) :] == TEAM_ARGS  # after the harness's own: the team's win
    assert live[live.index("-P") + 1] == "threads" and live[live.index("-c") + 1] == "3"
    assert "mingle: searching for neighbors" not in log  # the team's --without-mingle took
    assert "concurrency: 3 (thread)" in log

    result = run_scenario(spec, RunOptions(report_dir=tmp_path), tmp_path, log=lambda _: None)
    assert result.verdicts is not None and result.verdicts.counts["ok"] == 1, result.reason
    commands = json.loads((result.report_dir / "result.json").read_text())["worker_commands"]
    (argv,) = commands.values()
    assert argv[-len(TEAM_ARGS) :] == TEAM_ARGS and not set(WITHOUT[:1] + WITHOUT[2:]) & set(argv)


def warm_shutdown(**workers: Any) -> Scenario:
    """A threads worker (one thread, four prefetched messages) on a RabbitMQ broker, SIGTERMed
    while task 0 still has 5 s to run (longer than the worker heartbeat's 2 s interval), and a
    replacement worker."""
    short = {"seconds": 0.2, "steps": 1}
    return scenario(
        "threads-warm-shutdown",
        {"count": 1, "pool": "threads", "concurrency": 1, **workers},
        broker={"kind": "rabbitmq"},
        workload=[
            {"task": "sample_tasks.tasks.work", "kwargs": {"seconds": 6, "steps": 6}},
            {"task": "sample_tasks.tasks.work", "count": 4, "kwargs": short, "at": 0.2},
        ],
        faults=[
            {"kind": "terminate", "when": {"task": 0, "checkpoint": "step-1"}},
            {"kind": "start_worker", "when": {"after_fault": 0, "delay": 0.5}},
        ],
        timeout=60,
    )


def attempts_by_worker(result: Any) -> dict[str, list[str]]:
    """Which worker started each task, in order (task ids of the prefetched four only)."""
    history = h.read_jsonl(str(result.report_dir / "history.jsonl"))
    first = next(e["task_id"] for e in history if e["type"] == h.DISPATCH)
    found: dict[str, list[str]] = {}
    for event in history:
        if event["type"] == h.ATTEMPT_START and event["task_id"] != first:
            found.setdefault(event["worker"], []).append(event["task_id"])
    return found


def test_sigterm_returns_prefetched_messages_with_celerys_defaults(tmp_path: Path) -> None:
    result = run_scenario(
        warm_shutdown(), RunOptions(report_dir=tmp_path), tmp_path, log=lambda _: None
    )
    assert result.verdicts is not None, result.reason
    commands = json.loads((result.report_dir / "result.json").read_text())["worker_commands"]
    dying, replacement = sorted(commands, key=lambda name: name.split("@")[0])
    assert not set(WITHOUT) & set(commands[dying])
    by_worker = attempts_by_worker(result)
    assert dying not in by_worker, f"a prefetched task started on the dying worker: {by_worker}"
    assert len(set(by_worker.get(replacement, []))) == 4
    assert result.verdicts.counts["ok"] == 5 and result.verdicts.counts["lost"] == 0


def test_repro_worker_args_start_the_teams_worker(tmp_path: Path) -> None:
    """``repro --worker-args``: a whole command line, as a Procfile holds it."""
    line = "celery -A examples.ingest_app.app:app worker -P threads -c 1 -O fair --without-gossip"
    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "repro", "--app", "examples.ingest_app.app:app"]
        + ["--task", "ingest_app.ingest", "--args", "[3]", "--at", "checkpoint:part-2"]
        + ["--worker-args", line, "--timeout", "30", "--report-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # a verdict, either way
    result = json.loads(next(tmp_path.glob("*/repro-*/result.json")).read_text())
    assert (result["config"]["workers"]["pool"], result["config"]["workers"]["concurrency"]) == (
        "threads",
        1,
    )
    for argv in result["worker_commands"].values():
        assert argv[-3:] == ["-O", "fair", "--without-gossip"], argv
        assert argv[argv.index("-P") + 1] == "threads" and "--without-heartbeat" not in argv
