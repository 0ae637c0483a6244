"""``--jobs auto``: a scenario starts only when the CPUs were mostly idle, memory has room and the
previous start has settled; the first always starts; never more than the cap."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from celery_chaos.core.conclusion import PASSED, ScenarioResult
from celery_chaos.run import admission as adm
from celery_chaos.run.admission import Admission
from celery_chaos.run.parallel import run_parallel

from tests.unit.test_parallel_and_settle import scenario


class Machine:
    """psutil's CPU times and memory as the test sets them; time as the test moves it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now, self.busy, self.idle, self.available = 100.0, 0.0, 0.0, 8 << 30
        monkeypatch.setattr(adm.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(adm.psutil, "cpu_times", self.cpu_times)
        monkeypatch.setattr(
            adm.psutil, "virtual_memory", lambda: SimpleNamespace(available=self.available)
        )

    def cpu_times(self) -> _Times:
        return _Times(self.busy, self.idle)

    def spend(self, seconds: float, busy_fraction: float) -> None:
        self.now += seconds
        self.busy += 2 * seconds * busy_fraction  # two CPUs
        self.idle += 2 * seconds * (1 - busy_fraction)


class _Times(tuple):
    """What psutil.cpu_times() gives: fields that sum to all CPU time, ``idle`` and ``iowait``."""

    def __new__(cls, busy: float, idle: float) -> _Times:
        return super().__new__(cls, (busy, idle, 0.0))

    @property
    def idle(self) -> float:
        return self[1]

    @property
    def iowait(self) -> float:
        return self[2]


def test_first_always_then_only_after_an_idle_settled_window(monkeypatch) -> None:
    machine = Machine(monkeypatch)
    gate = Admission(cap=3)
    assert gate.room(0)  # the first scenario starts on any machine
    gate.started()
    machine.spend(0.5, 0.1)
    assert not gate.room(1)  # no window of CPU history yet, and not settled
    machine.spend(1.5, 0.1)
    assert gate.room(1)  # idle for the window, settled
    gate.started()
    machine.spend(2.0, 0.9)
    assert not gate.room(2)  # busy: nothing new starts
    machine.spend(1.2, 0.2)
    assert gate.room(2)
    assert not gate.room(3)  # the cap, however idle


def test_memory_floor_holds_scenarios_back(monkeypatch) -> None:
    machine = Machine(monkeypatch)
    gate = Admission(cap=4)
    gate.room(0)
    machine.spend(2.0, 0.0)
    machine.available = adm.MEMORY_FLOOR // 2
    assert not gate.room(1)
    machine.available = adm.MEMORY_FLOOR * 2
    assert gate.room(1)


def test_run_parallel_starts_the_next_only_when_admission_has_room() -> None:
    asked: list[int] = []
    started = threading.Event()

    class OneAtATime:
        def room(self, running: int) -> bool:
            asked.append(running)
            return running == 0

        def started(self) -> None:
            started.set()

    def run_one(s, log):  # noqa: ANN001, ANN202
        return ScenarioResult(s, PASSED, 1, "local", None)  # type: ignore[arg-type]

    suite = [scenario("a"), scenario("b"), scenario("c")]
    results = run_parallel(suite, run_one, 3, threading.Event(), print, None, None, OneAtATime())
    assert [r.scenario.name for r in results] == ["a", "b", "c"]
    assert started.is_set() and max(asked) <= 1  # never a second beside a running one


def test_the_longest_by_the_previous_run_start_first_unknown_by_timeout() -> None:
    started: list[str] = []

    class OneAtATime:
        def room(self, running: int) -> bool:
            return running == 0

        def started(self) -> None:
            pass

    def run_one(s, log):  # noqa: ANN001, ANN202
        started.append(s.name)
        return ScenarioResult(s, PASSED, 1, "local", None)  # type: ignore[arg-type]

    suite = [scenario("short"), scenario("long"), scenario("new", "timeout: 20")]
    recorded = {"short": 3.0, "long": 41.0}  # "new" has no record: its timeout counts
    results = run_parallel(
        suite, run_one, 3, threading.Event(), print, None, None, OneAtATime(), recorded
    )
    assert started == ["long", "new", "short"]
    assert [r.scenario.name for r in results] == ["short", "long", "new"]  # suite order
