"""What else died, against real workers: a worker main process that dies with no fault aimed at it
is reaped once with its log tail and judged a ``worker_crashes`` finding; an attempt's exit reason
is a code of the fixed vocabulary; a worker that cannot start says why at once. (The watcher's
choice of code is unit-tested in tests/unit/test_exit_reasons.py.)"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_chaos.core import history as h
from celery_chaos.core.checker import check
from celery_chaos.core.conclusion import PASSED, ScenarioResult
from celery_chaos.core.scenario import Scenario, parse_scenario
from celery_chaos.placements.base import BackendError, WorkerExit
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.run import workload
from celery_chaos.run.runner import RunOptions, run_scenario
from celery_chaos.run.watcher import Watcher

from tests.integration.scenario_support import run as run_file

pytestmark = pytest.mark.integration
REAP_DEADLINE = 20.0


def scenario(**spec: Any) -> Scenario:
    data = {"name": "adhoc", "description": "integration test", "timeout": 30}
    data |= {"workload": [work()], **spec}
    return parse_scenario(yaml.safe_load(yaml.safe_dump(data)), "adhoc.yaml")


def run(tmp_path: Path, **spec: Any) -> ScenarioResult:
    result = run_scenario(
        scenario(**spec), RunOptions(report_dir=tmp_path), tmp_path, log=lambda _: None
    )
    assert result.verdicts is not None, result.reason
    return result


def work(seconds: float = 1.0, steps: int = 10, **extra: Any) -> dict[str, Any]:
    kwargs = {"seconds": seconds, "steps": steps}
    return {"task": "sample_tasks.tasks.work", "kwargs": kwargs, **extra}


def reap_until(backend: LocalPlacement) -> list[WorkerExit]:
    end = time.monotonic() + REAP_DEADLINE
    while time.monotonic() < end:
        exits = backend.reap_worker_exits()
        if exits:
            return exits
        time.sleep(0.05)
    pytest.fail(f"no worker exit reaped within {REAP_DEADLINE}s")


def test_a_segfaulted_worker_is_reaped_once_and_judged_a_crash(tmp_path: Path) -> None:
    backend = LocalPlacement(scenario(workers={"count": 2}), tmp_path)
    with backend:
        backend.start()
        assert backend.ledger is not None
        crashed, survivor = backend.workers
        os.kill(crashed.handle.pid, signal.SIGSEGV)  # no fault: the test crashes it
        (gone,) = reap_until(backend)
        assert (gone.worker, gone.pid) == (crashed.name, crashed.handle.pid)
        assert (gone.signal, gone.exitcode) == (signal.SIGSEGV, None)
        assert gone.log_tail, "the worker's last log lines come with its exit"
        assert backend.reap_worker_exits() == []  # each exit reported once
        assert backend.worker_exit_reason(crashed) == "signal:11"
        assert backend.worker_exit_reason(survivor) is None
        backend.ledger.record(h.WORKER_EXIT, **asdict(gone))  # as the run loop records it
        verdicts = check(backend.ledger.read_all())
    assert verdicts.counts["worker_crashes"] == 1
    (crash,) = verdicts.crashes
    assert crash.worker == crashed.name and crash.reason_code == "signal:11"


def test_a_worker_that_cannot_import_its_app_says_why_at_once(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "broken_app.py").write_text(
        'raise RuntimeError("broken_app: SETTING_X is not set")\napp = None\n'
    )
    backend = LocalPlacement(
        scenario(workers={"count": 1, "app": "broken_app:app"}), tmp_path / "run", cwd=app_dir
    )
    began = time.monotonic()
    with backend, pytest.raises(BackendError) as error:
        backend.start()
    took = time.monotonic() - began
    assert "exited during startup" in str(error.value)
    assert "RuntimeError: broken_app: SETTING_X is not set" in str(error.value)
    assert took < 30, f"took {took:.1f}s: should fail fast, not at the 60 s readiness deadline"


def test_a_fault_kill_is_recorded_with_its_vocabulary_code(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        workload=[work()],
        faults=[{"kind": "kill_child", "when": {"task": 0, "checkpoint": "step-3"}}],
    )
    attempt = result.verdicts.tasks[0].attempts[0]
    assert attempt.exit_reason_code == "fault_sigkill"
    assert attempt.exit_reason == "SIGKILL by kill_child fault"
    assert result.verdicts.counts["worker_crashes"] == 0


def test_a_segfaulted_pool_process_is_recorded_as_signal_11(tmp_path: Path) -> None:
    """No fault: the test sends SIGSEGV to the pool process running a task; the harness records
    the death with the vocabulary code, while the worker main lives on."""
    spec = scenario(workload=[work(seconds=20.0, steps=20)], workers={"count": 1})
    backend = LocalPlacement(spec, tmp_path)
    with backend:
        backend.start()
        assert backend.ledger is not None
        watcher = Watcher(backend, backend.ledger)
        client = workload.make_client(backend.broker.url, spec.celery)
        (dispatch,) = workload.plan(spec)
        workload.send(client, backend.ledger, dispatch)
        exits = drive(watcher, backend, until=h.ATTEMPT_START, then=signal.SIGSEGV)
        client.close()
        assert backend.reap_worker_exits() == []  # the worker main survived its pool process
    (died,) = exits
    assert died["reason_code"] == "signal:11", died
    assert "SIGSEGV" in died["reason"]


def drive(watcher: Watcher, backend: LocalPlacement, until: str, then: int) -> list[h.Event]:
    """Feed ledger events to the watcher; at the first ``until`` event send ``then`` to its pid;
    return the ``process_exit`` events once one is recorded (deadline-bounded)."""
    assert backend.ledger is not None
    end, exits = time.monotonic() + REAP_DEADLINE * 2, []
    while time.monotonic() < end and not exits:
        for event in backend.ledger.poll():
            watcher.observe(event)
            if event["type"] == until:
                os.kill(event["pid"], then)
            exits += [event] if event["type"] == h.PROCESS_EXIT else []
        watcher.check()
        time.sleep(0.01)
    if not exits:
        pytest.fail(f"no process_exit within {REAP_DEADLINE * 2}s")
    return exits


def test_a_worker_that_dies_at_a_broker_restart_is_a_crash(tmp_path: Path) -> None:
    """A worker told not to reconnect (``broker_connection_retry: false``) shuts itself down when
    the broker restarts: the restart is a fault, but not one aimed at the worker, so its exit is
    a crash, reported with the CRITICAL line that explains it."""
    spec = scenario(
        workers={"count": 1},
        celery={"broker_connection_retry": False, "broker_connection_max_retries": 0},
    )
    backend = LocalPlacement(spec, tmp_path)
    with backend:
        backend.start()
        assert backend.ledger is not None
        detail = backend.restart_broker()
        backend.ledger.record(h.FAULT, fault=0, kind="restart_broker", status="injected",
                              worker=None, hits=[], detail=detail)  # fmt: skip
        (gone,) = reap_until(backend)
        backend.ledger.record(h.WORKER_EXIT, **asdict(gone))
        verdicts = check(backend.ledger.read_all())
    assert (gone.exitcode, gone.signal) == (1, None)
    assert "broker_connection_retry=False" in gone.log_tail[-1]
    assert verdicts.counts["worker_crashes"] == 1
    assert verdicts.crashes[0].reason_code == "exit:1"
    assert "CRITICAL" in verdicts.offenders("worker_crashes")[0]


def test_a_broker_restart_with_unacked_messages_crashes_the_worker(tmp_path: Path) -> None:
    """Scenario 28 (Kombu 5.7, Redis): the worker dies of an AttributeError in Kombu's restore
    after a broker restart, its acks lost, and the replacement runs both tasks again."""
    result = run_file("28-ack-late-broker-restart-crashes-worker.yaml", tmp_path)
    assert result.status == PASSED, (result.reason, result.expectations)
    (crash,) = result.verdicts.crashes
    assert crash.reason_code == "exit:1"
    assert (
        "'NoneType' object has no attribute 'hostname'"
        in result.verdicts.offenders("worker_crashes")[0]
    )
