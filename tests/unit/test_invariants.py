"""The app's state judged: each invariant against its ``expect`` (core.invariants), and the
checker's two findings (``invariant_violations``, ``result_not_stored``) on synthetic histories."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery_chaos.core.app_state import AppState, InvariantValue
from celery_chaos.core.checker import VERDICTS, check
from celery_chaos.core.expectations import evaluate, expected_for
from celery_chaos.core.invariants import broken_text, judge
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import Range

from tests.unit.histories import TASK, dispatch, end, start

A, B = "task-a", "task-b"


def value(**fields: Any) -> InvariantValue:
    base: dict[str, Any] = {"name": "no-stuck", "kind": "sql", "query": "SELECT 1", "expect": 0}
    return InvariantValue(**(base | {"value": 0.0} | fields))


@pytest.mark.parametrize(
    ("expect", "measured", "held"),
    [
        (0, 0.0, True),
        (0, 2.0, False),
        (3, 3.0, True),
        ({"min": 3, "max": 3}, 3.0, True),
        ({"min": 3, "max": 3}, 2.0, False),
        ({"min": 1}, 7.0, True),
        ({"max": 1}, 2.0, False),
        ({"min": 1, "max": None}, 0.0, False),
        (Range(min=2, max=4), 4.0, True),  # a scenario's Range, passed on as is
        (Range(min=2, max=4), 5.0, False),
    ],
)
def test_a_value_holds_when_inside_expect(expect: Any, measured: float, held: bool) -> None:
    judged = judge(value(expect=expect, value=measured))
    assert judged["held"] is held
    assert judged["value"] == judged["worst"] == measured
    assert judged["error"] is None


def test_an_unreadable_value_is_broken_never_held() -> None:
    judged = judge(value(value=None, error="relation documents does not exist"))
    assert (judged["held"], judged["value"]) == (False, None)
    assert judged["error"] == "relation documents does not exist"
    assert judge(value(value=None))["error"] == "could not be read"
    assert broken_text(judged) == (
        "invariant no-stuck = unreadable (expected 0): relation documents does not exist"
    )


def test_during_breaks_when_any_sample_broke_and_reports_the_worst() -> None:
    judged = judge(value(during=True, samples=[0.0, 1.0, 3.0, 1.0], value=0.0))
    assert (judged["held"], judged["worst"], judged["value"]) == (False, 3.0, 0.0)
    assert broken_text(judged) == (
        "invariant no-stuck = 3 while faults were active (final 0) (expected 0)"
    )
    steady = judge(value(during=True, samples=[0.0, 0.0], value=0.0))
    assert (steady["held"], steady["worst"]) == (True, 0.0)
    below = judge(value(expect={"min": 2, "max": 5}, during=True, samples=[4, 0, 6], value=3.0))
    assert (below["held"], below["worst"]) == (False, 0)  # 2 below beats 1 above
    final = judge(value(during=True, samples=[0.0], value=2.0))
    assert (final["held"], final["worst"]) == (False, 2.0)


def test_samples_of_an_invariant_not_during_are_ignored() -> None:
    assert judge(value(samples=[9.0], value=0.0))["held"] is True


def test_broken_text_words_ranges_and_fractions() -> None:
    assert broken_text(judge(value(expect={"min": 3, "max": 3}, value=2.0))) == (
        "invariant no-stuck = 2 (expected between 3 and 3)"
    )
    assert broken_text(judge(value(expect={"min": 1}, value=0.5))) == (
        "invariant no-stuck = 0.5 (expected at least 1)"
    )


# --- the checker --------------------------------------------------------------------------


def stored_history(stores: bool | None = True, state: str = "SUCCESS") -> list[dict[str, Any]]:
    first = start(A, 1, 0.1)
    if stores is not None:
        first["stores_result"] = stores
    return [dispatch(A, 0, 0.0), first, end(A, 1, 1.0, state=state), *stored_b()]


def stored_b() -> list[dict[str, Any]]:
    second = start(B, 1, 0.2) | {"stores_result": True}
    return [dispatch(B, 1, 0.0), second, end(B, 1, 1.1)]


def test_invariants_are_judged_and_counted() -> None:
    state = AppState(
        invariants=[
            value(name="no-stuck", value=2.0),
            value(name="exports", kind="path", query="media/*.zip", expect={"min": 2, "max": 2},
                  value=2.0),
        ]
    )  # fmt: skip
    verdicts = check(stored_history(), app_state=state)
    assert verdicts.counts["invariant_violations"] == 1
    assert [j["held"] for j in verdicts.invariants] == [False, True]
    assert verdicts.offenders("invariant_violations") == ["invariant no-stuck = 2 (expected 0)"]
    document = json.loads(json.dumps(verdicts.as_dict()))
    assert [(i["name"], i["value"], i["expect"], i["held"]) for i in document["invariants"]] == [
        ("no-stuck", 2.0, 0, False),
        ("exports", 2.0, {"min": 2, "max": 2}, True),
    ]


def test_result_not_stored_is_a_completed_task_the_backend_does_not_hold() -> None:
    state = AppState(results={A: "PENDING", B: "SUCCESS"}, result_backend="redis://h:1/1")
    verdicts = check(stored_history(), app_state=state)
    assert verdicts.counts["result_not_stored"] == 1
    assert verdicts.result_not_stored == [A]
    assert verdicts.offenders("result_not_stored") == [
        f"{TASK}[{A}] completed but the result backend holds PENDING"
    ]
    document = verdicts.as_dict()
    assert document["result_not_stored"] == [A]
    assert document["result_backend"] == "redis://h:1/1"
    assert document["verdicts"]["result_not_stored"] == 1


@pytest.mark.parametrize(
    ("stores", "state", "results", "count"),
    [
        (True, "SUCCESS", {A: "SUCCESS", B: "SUCCESS"}, 0),
        (True, "SUCCESS", {B: "SUCCESS"}, 1),  # not read: the backend showed nothing for it
        (True, "SUCCESS", {A: "unreadable: ConnectionError", B: "SUCCESS"}, 1),
        (False, "SUCCESS", {A: "PENDING", B: "SUCCESS"}, 0),  # ignore_result: nothing stored
        (None, "SUCCESS", {A: "PENDING", B: "SUCCESS"}, 0),  # an older agent: no field
        (True, "FAILURE", {A: "PENDING", B: "SUCCESS"}, 0),  # never completed
        (True, "SUCCESS", None, 0),  # the run did not read the backend
    ],
)
def test_result_not_stored_rule(
    stores: bool | None, state: str, results: dict[str, str] | None, count: int
) -> None:
    app_state = AppState(results=results)
    verdicts = check(stored_history(stores, state), app_state=app_state)
    assert verdicts.counts["result_not_stored"] == count


def test_without_an_app_state_both_findings_are_zero() -> None:
    verdicts = check(stored_history())
    assert verdicts.counts["invariant_violations"] == verdicts.counts["result_not_stored"] == 0
    assert verdicts.invariants == [] and verdicts.result_not_stored == []
    assert {"invariant_violations", "result_not_stored"} <= set(VERDICTS)


# --- expectations -------------------------------------------------------------------------

SCENARIO: dict[str, Any] = {
    "name": "inv",
    "description": "an invariant is an expectation",
    "workload": [{"task": TASK}],
    "invariants": [{"name": "files", "path": "out/*", "expect": 1}],
}


def test_a_scenario_with_invariants_expects_none_broken_unless_it_says_otherwise() -> None:
    scenario = parse_scenario(SCENARIO, "inv.yaml")
    assert expected_for(scenario, {}) == {"invariant_violations": 0}
    (result,) = evaluate(expected_for(scenario, {}), {"invariant_violations": 1})
    assert not result.met
    claimed = parse_scenario(SCENARIO | {"expect": {"invariant_violations": 1}}, "inv.yaml")
    assert expected_for(claimed, {}) == {"invariant_violations": 1}
    plain = parse_scenario(SCENARIO | {"invariants": []}, "inv.yaml")
    assert expected_for(plain, {}) == {}


@pytest.mark.parametrize(
    ("results", "said"),
    [
        ({A: "PENDING"}, "holds PENDING"),
        ({A: "unreadable: ConnectionError"}, "could not be read (unreadable: ConnectionError)"),
        ({}, "showed no state for it"),
    ],
)
def test_result_not_stored_says_what_the_backend_holds(results: dict[str, str], said: str) -> None:
    verdicts = check(stored_history(), app_state=AppState(results=results | {B: "SUCCESS"}))
    assert verdicts.offenders("result_not_stored") == [
        f"{TASK}[{A}] completed but the result backend {said}"
    ]
    from celery_chaos.core.explain_app import app_lines

    (line,) = app_lines(verdicts)
    assert f"but the app's result backend {said}" in line


def test_an_attempt_that_finished_after_a_fault_hit_it_was_not_killed_mid_task() -> None:
    # A docker worker stopped after its task ended (warm shutdown): the fault's hit marks the
    # attempt, but its attempt_end says it finished: no "attempt killed mid-task" in the why.
    from celery_chaos.core import history as h
    from celery_chaos.core.explain_app import app_lines

    from tests.unit.histories import event

    hit = event(h.FAULT, 1.5, fault=0, kind="evict", status="injected", hits=[
        {"task_id": A, "attempt": 1}
    ])  # fmt: skip
    history = [dispatch(A, 0), start(A, 1, 1.0), hit, end(A, 1, 2.0)]
    state = AppState(invariants=[value(value=1.0)])
    (line,) = app_lines(check(history, app_state=state))
    assert "no attempt was interrupted" in line
    killed = [dispatch(A, 0), start(A, 1, 1.0), hit]
    (line,) = app_lines(check(killed, app_state=state))
    assert "1 task(s) had an attempt killed mid-task" in line
