"""Whose doing a worker's death is, read from the history alone, and where a fault aimed at a task
lands when that task is not running (issue 17 items 1 and 4)."""

from __future__ import annotations

from typing import Any

import pytest
from celery_chaos.core import exit_reasons
from celery_chaos.core import history as h
from celery_chaos.core.checker import check
from celery_chaos.core.crashes import crash_text, kills_whole_worker, worker_crashes
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.placements.base import Worker
from celery_chaos.run import workload
from celery_chaos.run.nemesis import Nemesis
from celery_chaos.run.watcher import LiveAttempt

from tests.unit.histories import TASK, WORKER, event, fault
from tests.unit.inline_scenario import scenario

OTHER = "w1@chaos-test"


def worker_exit(ts: float, worker: str = WORKER, signal: int | None = 9) -> dict[str, Any]:
    return event(h.WORKER_EXIT, ts, worker=worker, pid=50, exitcode=None, signal=signal)


# --- item 1: a fault whose carried-out effect killed the whole worker ----------------------


def test_kill_child_on_a_green_pool_blames_the_worker_and_its_exit_is_no_crash() -> None:
    """What the kill_child fault kind records for kill_child on gevent/eventlet/solo/threads."""
    kill = fault(0, 1.0, [("t", 1)], kind="kill_child", worker=WORKER, blame="worker")
    history = [kill, worker_exit(1.1)]

    assert worker_crashes(history) == []
    assert check(history).counts["worker_crashes"] == 0


def test_kill_child_of_a_pool_process_leaves_a_worker_exit_a_crash() -> None:
    kill = fault(0, 1.0, [("t", 1)], kind="kill_child", worker=WORKER, blame="pid", pid=77)
    (crash,) = worker_crashes([kill, worker_exit(1.1)])

    assert crash.worker == WORKER and crash.reason_code == "signal:9"


@pytest.mark.parametrize(
    "recorded",
    [
        {"blame": "worker", "status": "missed"},  # nothing was carried out
        {"blame": None, "status": "injected"},  # pause, partition...: the worker lives on
    ],
    ids=["missed", "no-blame"],
)
def test_a_fault_that_killed_nothing_explains_no_exit(recorded: dict[str, Any]) -> None:
    kill = {**fault(0, 1.0, [], kind="kill_child", worker=WORKER), **recorded}

    assert not kills_whole_worker(kill)
    assert len(worker_crashes([kill, worker_exit(1.1)])) == 1


def test_the_blame_covers_only_the_worker_it_names() -> None:
    kill = fault(0, 1.0, [], kind="kill_child", worker=WORKER, blame="worker")
    (crash,) = worker_crashes([kill, worker_exit(1.1), worker_exit(1.2, worker=OTHER)])

    assert crash.worker == OTHER


UNRECOVERABLE = [
    "[... CRITICAL/MainProcess] Unrecoverable error: PreconditionFailed(406, 'PRECONDITION_FAILED"
    " - delivery acknowledgement on channel 1 timed out')",
]


def test_a_worker_declared_dead_whose_shutdown_hung_is_a_crash() -> None:
    """Seen on RabbitMQ after PRECONDITION_FAILED: the worker's process never exits (py-amqp's
    channel.close waits for a close-ok); the run records it as ``worker_hung`` at its end."""
    hung = event(h.WORKER_HUNG, 30.0, worker=OTHER, pid=51, log_tail=UNRECOVERABLE)
    crashes = worker_crashes([worker_exit(12.0, signal=None), hung])

    assert [(c.worker, c.reason_code) for c in crashes] == [
        (WORKER, "exit:0"),
        (OTHER, "shutdown_hung"),
    ]
    assert "its shutdown had not ended when the run did" in crashes[1].reason
    assert crash_text(crashes[1]).endswith(UNRECOVERABLE[-1])
    assert check([hung]).counts["worker_crashes"] == 1


def test_a_hung_worker_that_exits_before_the_history_is_read_is_one_crash() -> None:
    hung = event(h.WORKER_HUNG, 30.0, worker=OTHER, pid=51, log_tail=UNRECOVERABLE)
    (crash,) = worker_crashes([hung, worker_exit(30.1, worker=OTHER, signal=None)])

    assert crash.reason_code == "shutdown_hung"


def test_a_hung_worker_a_fault_killed_is_no_crash() -> None:
    kill = fault(0, 1.0, [], kind="kill_worker", worker=OTHER, blame="worker")
    hung = event(h.WORKER_HUNG, 30.0, worker=OTHER, pid=51, log_tail=UNRECOVERABLE)

    assert worker_crashes([kill, hung]) == []


def test_only_celerys_unrecoverable_error_declares_a_worker_dead() -> None:
    assert exit_reasons.declared_dead(["worker: Warm shutdown", *UNRECOVERABLE])
    assert not exit_reasons.declared_dead(["[... ERROR/MainProcess] Task x raised: ValueError"])


def test_a_restart_broker_that_takes_a_worker_down_is_a_crash() -> None:
    """Issue 17 item 2: the worker's own Unrecoverable error, not the harness's doing."""
    restart = fault(0, 1.0, [], kind="restart_broker", worker=None, blame=None)
    history = [restart, event(h.WORKER_EXIT, 2.0, worker=WORKER, pid=50, exitcode=1, signal=None)]

    (crash,) = worker_crashes(history)
    assert crash.reason_code == "exit:1"


# --- item 4: a fault aimed at a task that is not running --------------------------------


class Ledger:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def record(self, event_type: str, **fields: Any) -> dict[str, Any]:
        self.events.append({"type": event_type, **fields})
        return self.events[-1]

    def arm_breakpoint(self, point: str) -> None:
        pass

    def release_breakpoint(self, point: str) -> None:
        pass


class Backend:
    """Two workers; records every kill instead of carrying it out."""

    def __init__(self) -> None:
        self.workers = [Worker(0, WORKER, None), Worker(1, OTHER, None)]
        self.killed: list[str] = []
        self.scenario = scenario()  # a prefork pool

    def worker_named(self, name: str | None) -> Worker | None:
        return next((w for w in self.workers if w.name == name), None)

    def kill_worker(self, worker: Worker) -> str:
        self.killed.append(worker.name)
        return f"killed {worker.name}"


def fire(target: dict[str, Any], running: dict[Any, LiveAttempt]) -> tuple[Backend, dict]:
    """One ``kill_worker`` at t=0 with ``target``, the watcher's ``running`` attempts."""
    plan = parse_scenario(
        {
            "name": "aim",
            "description": "targeting",
            "workload": [{"task": TASK, "count": 2}],
            "faults": [{"kind": "kill_worker", "when": {"at": 0.0}, "target": target}],
        },
        "aim.yaml",
    )
    backend, ledger = Backend(), Ledger()
    dispatches = workload.plan(plan)
    chaos = Nemesis(plan.faults, dispatches, backend, ledger, 1, log=lambda _: None)  # type: ignore[arg-type]
    running = {
        k: LiveAttempt(dispatches[1].task_id, 1, a.worker, a.pid) for k, a in running.items()
    }
    chaos.tick(0.0, running)
    (recorded,) = ledger.events
    return backend, recorded


def test_a_kill_worker_aimed_at_a_finished_task_is_skipped_not_aimed_elsewhere() -> None:
    busy = {("x", 1): LiveAttempt("x", 1, OTHER, 200)}  # task 1 runs on w1; task 0 is done
    backend, recorded = fire({"task": 0}, busy)

    assert backend.killed == []
    assert recorded["status"] == "missed" and recorded["worker"] is None
    assert recorded["detail"] == "task 0 is not running: no worker to target"


def test_a_kill_worker_aimed_at_a_running_task_hits_its_worker() -> None:
    busy = {("x", 1): LiveAttempt("x", 1, OTHER, 200)}  # becomes task 1's attempt, on w1
    backend, recorded = fire({"task": 1}, busy)

    assert backend.killed == [OTHER] and recorded["status"] == "injected"


def test_a_kill_worker_with_no_task_named_still_hits_the_first_worker() -> None:
    backend, recorded = fire({}, {})

    assert backend.killed == [WORKER] and recorded["status"] == "injected"
