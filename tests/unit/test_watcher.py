"""The watcher's bookkeeping: when is a dead attempt still waiting for its worker's verdict?"""

from __future__ import annotations

from typing import Any

from celery_chaos.core import history as h
from celery_chaos.run.watcher import Watcher

from tests.unit.fakes import Recorder, WatchedPlacement


def watcher(alive: set[int]) -> tuple[Watcher, Recorder]:
    ledger = Recorder()
    placement = WatchedPlacement(alive=alive)
    return Watcher(placement, ledger, worker_lost_wait=10.0), ledger  # type: ignore[arg-type]


def start(task_id: str, attempt: int, pid: int) -> dict[str, Any]:
    return {"type": h.ATTEMPT_START, "task_id": task_id, "attempt": attempt, "pid": pid,
            "worker": "w0"}  # fmt: skip


def test_a_death_waits_for_the_worker_to_requeue_or_report_it() -> None:
    chaos, ledger = watcher(alive=set())
    chaos.observe(start("t", 1, pid=10))
    chaos.check()
    assert [e["type"] for e in ledger.events] == [h.PROCESS_EXIT]
    assert not chaos.settled()  # the worker may still report WorkerLostError or requeue
    chaos.observe(start("t", 2, pid=11))
    chaos.running.clear()
    assert chaos.settled()


def test_a_death_noticed_after_the_redelivery_started_is_already_resolved() -> None:
    chaos, _ = watcher(alive={11})
    chaos.observe(start("t", 1, pid=10))
    chaos.observe(start("t", 2, pid=11))  # redelivered before we looked at pid 10
    chaos.check()
    assert chaos.unresolved == {}
    assert not chaos.settled()  # attempt 2 is still running
    chaos.observe({"type": h.ATTEMPT_END, "task_id": "t", "attempt": 2, "state": "SUCCESS"})
    assert chaos.settled()


def test_a_failure_reported_before_we_noticed_the_death_resolves_it() -> None:
    chaos, _ = watcher(alive=set())
    chaos.observe(start("t", 1, pid=10))
    chaos.observe({"type": h.TASK_FAILURE, "task_id": "t", "exc_type": "WorkerLostError"})
    chaos.check()
    assert chaos.settled()


def test_a_death_is_blamed_on_the_fault_whose_event_names_it() -> None:
    chaos, ledger = watcher(alive=set())
    chaos.observe(start("t", 1, pid=10))
    chaos.observe(start("u", 1, pid=12))
    cause = "SIGKILL by kill_child fault"
    fault = {"type": h.FAULT, "kind": "kill_child", "pid": 10, "worker": "w0", "blame": "pid"}
    chaos.observe(fault | {"status": "injected", "cause": cause})
    chaos.check()
    reasons = {e["task_id"]: e["reason"] for e in ledger.events}
    assert reasons == {
        "t": "SIGKILL by kill_child fault",
        "u": "process exited with no fault injected",
    }
