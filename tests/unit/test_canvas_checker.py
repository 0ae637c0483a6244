"""Workflow verdicts and revoked_but_ran from synthetic histories (the pure checker), and the
canvas schema (a chord needs a result backend, one form per node)."""

from __future__ import annotations

from typing import Any

import pytest
from celery_chaos.core import history as h
from celery_chaos.core.broker_state import BrokerState
from celery_chaos.core.checker import check
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.core.workflows import layout, members, prerequisites

from tests.unit.histories import completed, dispatch, end, event, failure, start

STEP = "sample_tasks.tasks.step"


def leaf(name: str) -> dict[str, Any]:
    return {"task": STEP, "kwargs": {"name": name}}


def workflow(spec: dict[str, Any], ids: list[str]) -> list[h.Event]:
    """A workflow event laid out from a workload item, plus one dispatch per member."""
    scenario = parse_scenario(
        {"name": "w", "description": "d", "workload": [spec], "results": {"server": "ledger"}},
        "test",
    )
    tree = layout(scenario.workload[0], iter(enumerate(ids)))
    rows = members(tree)
    wf = event(h.WORKFLOW, 0.0, workflow="wf-1", kind=tree["kind"], tree=tree, members=rows)
    return [wf, *(dispatch(row["task_id"], row["index"], task=STEP) for row in rows)]


CHAIN = {"chain": [leaf("a"), leaf("b"), leaf("c")]}
CHORD = {"chord": {"header": [leaf("h0"), leaf("h1")], "body": leaf("merge")}}


def test_a_chain_that_ran_every_step_once_is_completed() -> None:
    history = workflow(CHAIN, ["a", "b", "c"])
    for n, task_id in enumerate("abc"):
        history += completed(task_id, n, t0=n)
    verdicts = check(history)
    assert verdicts.counts["workflow_completed"] == 1 and verdicts.counts["ok"] == 3
    assert verdicts.workflows[0].reason == "every member completed once"


def test_a_chain_whose_middle_step_died_is_broken_and_the_rest_lost() -> None:
    history = workflow(CHAIN, ["a", "b", "c"])
    history += completed("a", 0)
    history += [start("b", 1, 2.0), event(h.PROCESS_EXIT, 2.5, task_id="b", attempt=1)]
    history += [failure("b", 3.0, exc_type="WorkerLostError")]
    verdicts = check(history)
    assert [t.outcome for t in verdicts.tasks] == ["ok", "lost", "lost"]
    assert verdicts.counts["workflow_broken"] == 1
    assert verdicts.workflows[0].reason.startswith("member chain[1]")


def test_steps_waiting_behind_a_pending_step_are_pending_not_lost() -> None:
    history = workflow(CHAIN, ["a", "b", "c"]) + completed("a", 0)
    verdicts = check(history, BrokerState(True, {"b": ["unacked"]}))
    assert [t.outcome for t in verdicts.tasks] == ["ok", "pending", "pending"]
    assert verdicts.counts["workflow_pending"] == 1 and verdicts.counts["lost"] == 0


def test_a_chord_callback_that_ran_twice_is_duplicated() -> None:
    history = workflow(CHORD, ["h0", "h1", "cb"])
    history += completed("h0", 0) + completed("h1", 1)
    history += completed("cb", 2, t0=3.0) + completed("cb", 2, t0=5.0)[1:]
    history[-2]["attempt"] = history[-1]["attempt"] = 2
    verdicts = check(history)
    assert verdicts.counts["workflow_duplicated"] == 1
    assert verdicts.workflows[0].reason.startswith("callback chord.body")


def test_a_chord_with_a_lost_header_member_never_calls_back() -> None:
    history = workflow(CHORD, ["h0", "h1", "cb"]) + completed("h0", 0)
    history += [start("h1", 1, 1.0)]
    history += [event(h.PROCESS_EXIT, 2.0, task_id="h1", attempt=1, reason="SIGKILL")]
    verdicts = check(history)
    assert {t.task_id: t.outcome for t in verdicts.tasks} == {
        "h0": "ok",
        "h1": "lost",
        "cb": "lost",
    }
    assert verdicts.counts["workflow_broken"] == 1


def test_prerequisites_follow_celery_semantics() -> None:
    spec = {"chain": [leaf("a"), {"group": [leaf("b"), leaf("c")]}, leaf("d")]}
    tree = workflow(spec, ["a", "b", "c", "d"])[0]["tree"]
    assert prerequisites(tree) == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert [m["path"] for m in members(tree)] == [
        "chain[0]",
        "chain[1].group[0]",
        "chain[1].group[1]",
        "chain[2]",
    ]


def test_revoked_task_that_started_after_the_revoke_is_reported() -> None:
    history = [dispatch("r", 0), start("r", 1, 1.0), event(h.REVOKE, 1.5, task_id="r", index=0)]
    history += [event(h.PROCESS_EXIT, 2.0, task_id="r", attempt=1, reason="SIGKILL")]
    history += [start("r", 2, 3.0), end("r", 2, 4.0)]
    verdicts = check(history)
    assert verdicts.counts["revoked_but_ran"] == 1 and verdicts.revoked_ran == ["r"]
    assert verdicts.offenders("revoked_but_ran") == ["revoked task r ran"]


def test_a_revoke_that_held_is_not_reported() -> None:
    history = [dispatch("r", 0), event(h.REVOKE, 0.5, task_id="r", index=0)]
    assert check(history).counts["revoked_but_ran"] == 0


def base(**extra: Any) -> dict[str, Any]:
    return {"name": "w", "description": "d", **extra}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (base(workload=[CHORD]), "workload[0].chord: a chord needs a result backend"),
        (base(workload=[{"chain": [{"task": STEP, "group": [leaf("x")]}]}]), "exactly one of"),
        (base(workload=[{"task": STEP, "chain": [leaf("x")]}]), "exactly one of"),
        (base(workload=[{"chain": [leaf("x")], "args": [1]}]), "args/kwargs go on the members"),
        (
            base(workload=[{"chain": [leaf("x")], "revoke": {"at": 1}}]),
            "only a task item can be revoked",
        ),
        (
            base(workload=[{"task": STEP, "revoke": {"after_fault": 0}}]),
            "revoke.after_fault: 0: no such fault",
        ),
        (base(workload=[{"task": STEP, "revoke": {}}]), "exactly one of at, after_fault"),
        (base(workload=[{"task": STEP}], results={"server": "elsewhere"}), "results.server"),
    ],
)
def test_bad_canvas_input_names_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as error:
        parse_scenario(data, "s.yaml")
    assert message in str(error.value)


def test_a_workflow_counts_every_member_as_a_task() -> None:
    spec = {"chord": {"header": [leaf("a"), {"chain": [leaf("b"), leaf("c")]}], "body": leaf("d")}}
    scenario = parse_scenario(base(workload=[spec | {"count": 2}], results={}), "s.yaml")
    assert scenario.task_count == 8
    assert scenario.workload[0].members == 4


def test_a_revoke_after_a_fault_waits_for_that_fault() -> None:
    from celery_chaos.core.scenario_parts import Fault
    from celery_chaos.run.loop import Loop
    from celery_chaos.run.workload import Dispatch

    from tests.unit.fakes import ReapingPlacement, Recorder

    fault = Fault.model_validate({"kind": "kill_worker", "when": {"at": 5.0}})
    loop = Loop(ReapingPlacement(), Recorder(), [], [fault], seed=1, log=lambda _: None)  # type: ignore[arg-type]
    task = Dispatch(0, "t", STEP, [], {}, revoke={"after_fault": 0, "delay": 1.0, "at": None})
    assert not loop._revoke_due(task, 10.0)  # the fault has not fired
    loop.nemesis.planned[0].fired_at = 10.0
    assert not loop._revoke_due(task, 10.5)
    assert loop._revoke_due(task, 11.0)
    timed = Dispatch(1, "u", STEP, [], {}, revoke={"at": 2.0, "delay": 0.0})
    assert not loop._revoke_due(timed, 1.9) and loop._revoke_due(timed, 2.0)
