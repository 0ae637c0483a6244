"""Pure logic around a run: fault schedule, workload plan, expectations, reports and the CLI."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml
from celery_chaos.cli import main
from celery_chaos.core import history as h
from celery_chaos.core.checker import BrokerState, check
from celery_chaos.core.expectations import evaluate
from celery_chaos.core.outcome import (
    ERROR,
    FAILED,
    NOT_RUNNABLE,
    PASSED,
    ScenarioResult,
    SuiteResult,
)
from celery_chaos.core.scenario import Range, Scenario, parse_scenario
from celery_chaos.report import files as report
from celery_chaos.run import workload
from celery_chaos.run.nemesis import Nemesis
from click.testing import CliRunner

from tests.unit.histories import TASK, completed, killed

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

BASE: dict[str, Any] = {
    "name": "schedule",
    "description": "scheduling only",
    "workload": [{"task": TASK, "count": 3}],
    "timeout": 120,  # after every random window below: a fault must be able to fire
}


def scenario(**changes: Any) -> Scenario:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return parse_scenario(data, "inline")


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


def nemesis(
    faults: list[dict[str, Any]], seed: int = 1, backend: Any = None
) -> tuple[Nemesis, FakeLedger, list[workload.Dispatch]]:
    plan = scenario(faults=faults)
    dispatches = workload.plan(plan)
    ledger = FakeLedger()
    backend = backend or SimpleNamespace(workers=[])
    chaos = Nemesis(plan.faults, dispatches, backend, ledger, seed, log=lambda _: None)
    return chaos, ledger, dispatches


RANDOM_FAULTS = [
    {"kind": "pause", "when": {"random": {"min": 0.5, "max": 10.0}}},
    {"kind": "resume", "when": {"random": {"min": 10.0, "max": 20.0}}},
    {"kind": "kill_worker", "when": {"random": {"min": 0.0, "max": 100.0}}},
]


# --- nemesis planning --------------------------------------------------------------------


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
    backend = SimpleNamespace(workers=[], restart_broker=lambda down_for: "broker restarted")
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


def test_fault_without_a_running_target_is_recorded_skipped() -> None:
    plan = scenario(faults=[{"kind": "kill_child", "when": {"at": 0.0}, "target": {"task": 1}}])
    ledger = FakeLedger()
    chaos = Nemesis(
        plan.faults,
        workload.plan(plan),
        SimpleNamespace(workers=[]),
        ledger,
        7,
        log=lambda _: None,
    )

    chaos.tick(0.0, running={})

    (recorded,) = ledger.events
    assert recorded["status"] == "skipped"
    assert recorded["hits"] == []


def test_a_fault_whose_trigger_never_came_is_recorded_skipped_at_the_end() -> None:
    chaos, ledger, _ = nemesis([{"kind": "kill_child", "when": {"task": 0, "checkpoint": "x"}}])
    chaos.arm()

    chaos.give_up(5.0)

    (recorded,) = ledger.events
    assert (recorded["status"], recorded["fired"], recorded["fault"]) == ("skipped", False, 0)
    assert chaos.done


# --- workload plan -----------------------------------------------------------------------


def test_plan_flattens_the_workload_in_order_with_global_indices() -> None:
    plan = scenario(
        workload=[
            {"task": "a", "count": 2, "args": ["doc-{n}", 5], "at": 0.5},
            {
                "task": "b",
                "count": 3,
                "kwargs": {"to": "user-{n}@x", "nested": {"ids": ["{n}", "k{n}k"]}, "n": 1},
                "options": {"countdown": 2, "queue": "slow"},
            },
        ]
    )
    dispatches = workload.plan(plan)

    assert [(d.index, d.task) for d in dispatches] == [
        (0, "a"),
        (1, "a"),
        (2, "b"),
        (3, "b"),
        (4, "b"),
    ]
    assert [d.args for d in dispatches[:2]] == [["doc-0", 5], ["doc-1", 5]]
    assert dispatches[3].kwargs == {"to": "user-3@x", "nested": {"ids": ["3", "k3k"]}, "n": 1}
    assert [d.at for d in dispatches] == [0.5, 0.5, 0.0, 0.0, 0.0]
    assert dispatches[0].options == {}
    assert dispatches[2].options == {"countdown": 2, "queue": "slow"}  # unset options left out
    assert not any(d.sent for d in dispatches)
    # the scenario itself keeps its placeholders
    assert plan.workload[0].args == ["doc-{n}", 5]


def test_plan_gives_fresh_unique_task_ids() -> None:
    plan = scenario(workload=[{"task": "a", "count": 50}])
    first, second = workload.plan(plan), workload.plan(plan)

    ids = [d.task_id for d in first]
    assert len(set(ids)) == 50
    assert all(uuid.UUID(task_id) for task_id in ids)
    assert not set(ids) & {d.task_id for d in second}


# --- expectations ------------------------------------------------------------------------


def test_exact_expectations() -> None:
    results = evaluate({"ok": 2, "lost": 0}, {"ok": 2, "lost": 1})

    assert [(r.verdict, r.wanted, r.actual, r.met) for r in results] == [
        ("ok", "== 2", 2, True),
        ("lost", "== 0", 1, False),
    ]


@pytest.mark.parametrize(
    ("rule", "actual", "met", "wanted"),
    [
        (Range(min=1), 0, False, ">= 1"),
        (Range(min=1), 7, True, ">= 1"),
        (Range(max=2), 3, False, "<= 2"),
        (Range(max=2), 0, True, "<= 2"),
        (Range(min=1, max=2), 1, True, ">= 1 and <= 2"),
        (Range(min=1, max=2), 2, True, ">= 1 and <= 2"),
        (Range(min=1, max=2), 3, False, ">= 1 and <= 2"),
        (Range(), 99, True, "any"),
    ],
)
def test_ranged_expectations(rule: Range, actual: int, met: bool, wanted: str) -> None:
    (result,) = evaluate({"pending": rule}, {"pending": actual})

    assert (result.met, result.wanted, result.actual) == (met, wanted, actual)


def test_expectation_on_a_verdict_missing_from_counts_reads_zero() -> None:
    (result,) = evaluate({"unexpected": 0}, {})
    assert result.actual == 0 and result.met


# --- reports -----------------------------------------------------------------------------


def result_for(
    name: str,
    status: str,
    history: list[dict] | None = None,
    expect: dict | None = None,
    reason: str = "",
) -> ScenarioResult:
    plan = scenario(name=name, expect=expect or {})
    result = ScenarioResult(plan, status, 1, "local", Path("/tmp") / name, reason=reason)
    if history is not None:
        result.verdicts = check(history, BrokerState())
        result.expectations = evaluate(plan.expect, result.verdicts.counts)
    result.timings["total"] = 1.5
    return result


def suite() -> SuiteResult:
    lost = killed("lost-task-id", 1)
    return SuiteResult(
        [
            result_for("good", PASSED, completed("t0", 0), {"ok": 1}),
            result_for("bad", FAILED, [*completed("t0", 0), *lost], {"ok": 2, "lost": 0}),
            result_for("no-cgroup", NOT_RUNNABLE, reason="oom needs a writable memory cgroup"),
            result_for("broken", ERROR, reason="worker w0 exited during startup"),
        ],
        Path("/tmp/run"),
    )


def test_junit_has_one_testcase_per_scenario_and_names_offenders() -> None:
    root = ET.fromstring(report.junit_xml(suite()))

    assert root.tag == "testsuite"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "4",
        "1",
        "1",
        "1",
    )
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert list(cases) == ["good", "bad", "no-cgroup", "broken"]
    assert list(cases["good"]) == []
    failure = cases["bad"].find("failure")
    assert failure is not None
    message = failure.get("message")
    assert "ok: expected == 2, got 1" in message
    assert f"lost: expected == 0, got 1 ({TASK}[lost-task-id])" in message
    assert cases["no-cgroup"].find("skipped").get("message") == "oom needs a writable memory cgroup"
    assert cases["broken"].find("error").get("message") == "worker w0 exited during startup"
    assert cases["bad"].get("time") == "1.5"


def test_markdown_summary_has_a_row_per_scenario() -> None:
    text = report.markdown_summary(suite())

    assert "1/4 scenarios met their expectations." in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["good", "bad", "no-cgroup", "broken"]
    assert "lost-task-id" in text


# --- command line ------------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_run_with_a_malformed_scenario_exits_2_with_one_line(tmp_path: Path) -> None:
    data = {**BASE, "faults": [{"kind": "explode", "when": {"at": 1}}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    result = invoke("run", str(path), "--report-dir", str(tmp_path / "reports"))

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"celery-chaos: error: {path}: faults[0].kind: ")
    assert not (tmp_path / "reports").exists()  # nothing ran


def test_run_with_a_nonexistent_path_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    result = invoke("run", str(missing))

    assert result.exit_code == 2
    assert result.stderr.strip() == f"celery-chaos: error: {missing}: no such file or folder"


def test_run_with_an_empty_folder_exits_2(tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path))

    assert result.exit_code == 2
    assert "no scenario files" in result.stderr


def test_run_only_an_unknown_name_exits_2() -> None:
    result = invoke("run", str(SCENARIOS), "--only", "no-such-scenario")

    assert result.exit_code == 2
    assert (
        result.stderr.strip() == "celery-chaos: error: --only: no scenario named 'no-such-scenario'"
    )


def test_list_the_shipped_scenarios() -> None:
    result = invoke("list", str(SCENARIOS))

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "kill_child" in result.stdout
