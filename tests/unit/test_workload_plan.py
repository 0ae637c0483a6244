"""The workload plan (pure): the scenario's workload flattened into dispatches in order, with
placeholders filled and fresh task ids."""

from __future__ import annotations

import uuid

from celery_chaos.run import workload

from tests.unit.inline_scenario import scenario


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
