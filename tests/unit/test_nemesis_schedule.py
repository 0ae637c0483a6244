"""The nemesis's schedule (pure): random triggers replay for a seed, each trigger's due time,
checkpoint and after_fault triggers, and faults recorded skipped when nothing was there to hit."""

from __future__ import annotations

from typing import Any

import pytest
from celery_chaos.core import history as h
from celery_chaos.placements.base import Worker
from celery_chaos.run import workload
from celery_chaos.run.nemesis import Nemesis

from tests.unit.inline_scenario import scenario


class FakeLedger:
    """Records what the nemesis writes; no Redis."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.armed: set[str] = set()
        self.released: list[str] = []

    def record(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": event_type, "ts": 0.0, **fields}
        self.events.append(event)
        return event

    def arm_breakpoint(self, point: str) -> None:
        self.armed.add(point)

    def release_breakpoint(self, point: str) -> None:
        self.released.append(point)


class Placement:
    """The nemesis's view of a placement (``run.nemesis.Placement``): its workers, its
    scenario, and the one primitive these tests fire (a broker restart)."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []
        self.scenario = scenario()

    def worker_named(self, name: str | None) -> Worker | None:
        return next((w for w in self.workers if w.name == name), None)

    def restart_broker(self, down_for: float = 0.0) -> str:
        return "broker restarted"


def nemesis(
    faults: list[dict[str, Any]], seed: int = 1, backend: Any = None
) -> tuple[Nemesis, FakeLedger, list[workload.Dispatch]]:
    plan = scenario(faults=faults)
    dispatches = workload.plan(plan)
    ledger = FakeLedger()
    backend = backend or Placement()
    chaos = Nemesis(plan.faults, dispatches, backend, ledger, seed, log=lambda _: None)
    return chaos, ledger, dispatches


RANDOM_FAULTS = [
    {"kind": "pause", "when": {"random": {"min": 0.5, "max": 10.0}}},
    {"kind": "resume", "when": {"random": {"min": 10.0, "max": 20.0}}},
    {"kind": "kill_worker", "when": {"random": {"min": 0.0, "max": 100.0}}},
]


def test_random_triggers_replay_for_the_same_seed() -> None:
    first, _, _ = nemesis(RANDOM_FAULTS, seed=42)
    again, _, _ = nemesis(RANDOM_FAULTS, seed=42)

    times = [p.due for p in first.planned]
    assert times == [p.due for p in again.planned]
    assert first.schedule == again.schedule
    assert 0.5 <= times[0] <= 10.0 and 10.0 <= times[1] <= 20.0 and 0.0 <= times[2] <= 100.0


def test_random_triggers_differ_for_another_seed() -> None:
    one, _, _ = nemesis(RANDOM_FAULTS, seed=42)
    other, _, _ = nemesis(RANDOM_FAULTS, seed=43)

    assert [p.due for p in one.planned] != [p.due for p in other.planned]
    assert one.schedule != other.schedule


def test_schedule_describes_each_trigger() -> None:
    chaos, _, _ = nemesis(
        [
            {"kind": "kill_child", "when": {"task": 1, "checkpoint": "step-5", "attempt": 2}},
            {"kind": "kill_worker", "when": {"at": 2.5}},
            {"kind": "start_worker", "when": {"after_fault": 1, "delay": 1.5}},
        ]
    )

    assert chaos.schedule == [
        "fault 0: kill_child when task 1 attempt 2 reaches 'step-5'",
        "fault 1: kill_worker at t=2.500s",
        "fault 2: start_worker 1.5s after fault 1",
    ]


def test_at_trigger_is_due_at_its_offset_plus_delay() -> None:
    chaos, _, _ = nemesis([{"kind": "pause", "when": {"at": 2.0, "delay": 0.5}}])

    assert chaos.planned[0].due == 2.5


def test_random_trigger_honours_delay() -> None:
    chaos, _, _ = nemesis([{"kind": "pause", "when": {"random": {"min": 1, "max": 1}, "delay": 2}}])

    assert chaos.planned[0].due == 3.0


def test_checkpoint_trigger_arms_the_dispatched_task_and_fires_on_its_attempt() -> None:
    faults = [{"kind": "kill_child", "when": {"task": 2, "checkpoint": "step-5", "delay": 0.25}}]
    chaos, ledger, dispatches = nemesis(faults)
    task_id = dispatches[2].task_id
    point = h.breakpoint_id(task_id, "step-5", 1)

    chaos.arm()
    assert ledger.armed == {point}
    assert chaos.planned[0].due is None

    def reached(name: str, attempt: int, now: float) -> None:
        event = {"type": h.CHECKPOINT, "task_id": task_id, "name": name, "attempt": attempt}
        chaos.observe(event, now)

    reached("step-5", 2, 1.0)  # another attempt
    reached("step-4", 1, 1.0)  # another checkpoint
    chaos.observe(
        {"type": h.CHECKPOINT, "task_id": dispatches[0].task_id, "name": "step-5", "attempt": 1},
        1.0,
    )  # another task
    assert chaos.planned[0].due is None
    reached("step-5", 1, 3.0)
    assert chaos.planned[0].due == 3.25


def test_after_fault_fires_delay_after_the_fault_it_follows() -> None:
    backend = Placement()
    faults = [
        {"kind": "restart_broker", "when": {"at": 1.0}},
        {"kind": "restart_broker", "when": {"after_fault": 0, "delay": 2.0}},
    ]
    chaos, ledger, _ = nemesis(faults, backend=backend)

    chaos.tick(0.9)
    assert ledger.events == []
    chaos.tick(1.2)  # fault 0 fires late (the loop polls); fault 1 counts from when it fired
    assert [e["fault"] for e in ledger.events] == [0]
    assert chaos.planned[1].due == pytest.approx(3.2)
    chaos.tick(3.1)
    assert len(ledger.events) == 1 and not chaos.done
    chaos.tick(3.2)
    assert [e["fault"] for e in ledger.events] == [0, 1]
    assert all(e["type"] == h.FAULT and e["status"] == "injected" for e in ledger.events)
    assert chaos.done


def test_fault_without_a_running_target_is_recorded_missed() -> None:
    plan = scenario(faults=[{"kind": "kill_child", "when": {"at": 0.0}, "target": {"task": 1}}])
    ledger = FakeLedger()
    chaos = Nemesis(
        plan.faults,
        workload.plan(plan),
        Placement(),
        ledger,
        7,
        log=lambda _: None,
    )

    chaos.tick(0.0, running={})

    (recorded,) = ledger.events
    assert recorded["status"] == "missed"
    assert recorded["hits"] == []


def test_a_fault_whose_trigger_never_came_is_recorded_missed_at_the_end() -> None:
    chaos, ledger, _ = nemesis([{"kind": "kill_child", "when": {"task": 0, "checkpoint": "x"}}])
    chaos.arm()

    chaos.give_up(5.0)

    (recorded,) = ledger.events
    assert (recorded["status"], recorded["fired"], recorded["fault"]) == ("missed", False, 0)
    assert chaos.done
