"""Workflows (Celery's canvas: chain, group, chord) and revokes: pure logic, no I/O.

The schema (``core/scenario.py``) uses the shape helpers; the harness lays a workflow out
(:func:`layout`) into a tree of members with consecutive workload indexes and records it in a
``workflow`` event before sending it; the checker calls :func:`workflow_reports` and
:func:`revoked_but_ran`.

Workflow semantics (one outcome per workflow):

- ``workflow_completed``: every member (the chord callback included) succeeded exactly once.
- ``workflow_broken``: a member never completed and never will (``lost``), or only if someone
  moves its dead letter back (``dead_lettered``), so the rest of the chain, or the chord's
  callback, never ran either. Members that were never published because
  something before them is lost are ``lost`` too: their work never happened.
- ``workflow_duplicated``: a member or the chord callback completed more than once.
- ``workflow_pending``: not finished, but it still can: a member is ``pending`` (in the broker
  or running). A member Celery has not published yet because a member before it is still
  pending is itself ``pending``, not ``lost``.

Precedence: broken, then duplicated, then pending, then completed.

Revokes: ``revoked_but_ran`` counts revoked tasks with an attempt that *started* after the
revoke was recorded (the worker should have discarded the message).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from celery_chaos.core.history import REVOKE, WORKFLOW

FORMS = ("task", "chain", "group", "chord")
WORKFLOW_VERDICTS = (
    "workflow_completed",
    "workflow_broken",
    "workflow_duplicated",
    "workflow_pending",
)


# --- shape (used by the schema and the harness) ------------------------------------------


def form(node: Any) -> str:
    """Which of task/chain/group/chord ``node`` is (the schema ensures exactly one)."""
    return next(name for name in FORMS if getattr(node, name, None) is not None)


def check_one_form(node: Any) -> None:
    given = [name for name in FORMS if getattr(node, name, None) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of task, chain, group, chord; got {given or 'none'}")


def children(node: Any) -> list[Any]:
    kind = form(node)
    if kind == "task":
        return []
    if kind == "chord":
        return [*node.chord.header, node.chord.body]
    return list(getattr(node, kind))


def leaves(node: Any) -> list[Any]:
    """The tasks of a workflow in file order (a chord: its header, then its callback)."""
    if form(node) == "task":
        return [node]
    return [leaf for child in children(node) for leaf in leaves(child)]


def needs_results(node: Any) -> bool:
    """Whether a chord appears anywhere in ``node`` (chords need a result backend)."""
    return form(node) == "chord" or any(needs_results(c) for c in children(node))


def layout(node: Any, ids: Iterator[tuple[int, str]], path: str = "") -> dict[str, Any]:
    """The workflow as a plain tree; each task takes the next (index, task_id) from ``ids``.

    Leaves: ``{kind: task, path, index, task_id, task, args, kwargs, options, immutable}``;
    chain/group: ``{kind, path, children}``; chord: ``{kind, path, header, body}``."""
    kind = form(node)
    here = f"{path}.{kind}" if path else kind
    if kind == "task":
        index, task_id = next(ids)
        return {
            "kind": "task",
            "path": path or "task",
            "index": index,
            "task_id": task_id,
            "task": node.task,
            "args": list(node.args),
            "kwargs": dict(node.kwargs),
            "options": node.options.model_dump(exclude_none=True),
            "immutable": bool(node.immutable),
        }
    if kind == "chord":
        header = [layout(c, ids, f"{here}.header[{i}]") for i, c in enumerate(node.chord.header)]
        return {
            "kind": kind,
            "path": here,
            "header": header,
            "body": layout(node.chord.body, ids, f"{here}.body"),
        }
    nodes = [layout(c, ids, f"{here}[{i}]") for i, c in enumerate(getattr(node, kind))]
    return {"kind": kind, "path": here, "children": nodes}


def task_paths(node: Any) -> list[tuple[str, str]]:
    """(field path of its ``task``, task name) for every task of a workload item, e.g.
    ``("chain[1].task", "app.tasks.load")``; a plain task item is ``("task", name)``."""
    if form(node) == "task":
        return [("task", node.task)]
    numbered = ((n, "") for n in range(len(leaves(node))))
    return [(f"{leaf['path']}.task", leaf["task"]) for leaf in tree_leaves(layout(node, numbered))]


def tree_leaves(tree: dict[str, Any]) -> list[dict[str, Any]]:
    if tree["kind"] == "task":
        return [tree]
    parts = [*tree["header"], tree["body"]] if tree["kind"] == "chord" else tree["children"]
    return [leaf for part in parts for leaf in tree_leaves(part)]


def callbacks(tree: dict[str, Any]) -> set[str]:
    """Task ids of every chord callback's tasks."""
    if tree["kind"] == "task":
        return set()
    if tree["kind"] == "chord":
        found = {leaf["task_id"] for leaf in tree_leaves(tree["body"])}
        return found | {i for part in tree["header"] for i in callbacks(part)}
    return {i for part in tree["children"] for i in callbacks(part)}


def members(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task: task_id, index, path, task, callback (a chord callback's task)."""
    called = callbacks(tree)
    return [
        {
            "task_id": leaf["task_id"],
            "index": leaf["index"],
            "path": leaf["path"],
            "task": leaf["task"],
            "callback": leaf["task_id"] in called,
        }
        for leaf in tree_leaves(tree)
    ]


def _terminals(tree: dict[str, Any]) -> list[str]:
    """Tasks whose completion means ``tree`` completed (what the next step waits for)."""
    kind = tree["kind"]
    if kind == "task":
        return [tree["task_id"]]
    if kind == "chord":
        return _terminals(tree["body"])
    if kind == "chain":
        return _terminals(tree["children"][-1])
    return [i for child in tree["children"] for i in _terminals(child)]


def prerequisites(tree: dict[str, Any], upstream: list[str] | None = None) -> dict[str, list[str]]:
    """For every task: the tasks that must succeed before Celery publishes it."""
    upstream = upstream or []
    kind = tree["kind"]
    if kind == "task":
        return {tree["task_id"]: upstream}
    found: dict[str, list[str]] = {}
    if kind == "chord":
        for part in tree["header"]:
            found |= prerequisites(part, upstream)
        joined = [i for part in tree["header"] for i in _terminals(part)]
        return found | prerequisites(tree["body"], joined)
    for child in tree["children"]:
        found |= prerequisites(child, upstream)
        if kind == "chain":
            upstream = _terminals(child)
    return found


# --- verdicts (used by the checker) ------------------------------------------------------


class _Task(Protocol):
    task_id: str
    outcome: str
    attempts: list[Any]
    in_broker: list[str]


@dataclass
class WorkflowReport:
    workflow_id: str
    kind: str
    index: int | None
    outcome: str
    reason: str
    members: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return f"workflow_{self.outcome}"


def _settle_waiting(tree: dict[str, Any], tasks: dict[str, _Task]) -> None:
    """A member never published (no attempt, not in the broker) while a prerequisite is still
    pending is waiting for it: ``pending``, not ``lost``. Leaves come in dependency order."""
    needs = prerequisites(tree)
    for leaf in tree_leaves(tree):
        report = tasks.get(leaf["task_id"])
        if report is None or report.outcome != "lost" or report.attempts or report.in_broker:
            continue
        if any(tasks[p].outcome == "pending" for p in needs[leaf["task_id"]] if p in tasks):
            report.outcome = "pending"


def _outcome(rows: list[dict[str, Any]]) -> tuple[str, str]:
    for outcome, verdict, says in (
        ("broken", "dead_lettered", "was dead-lettered: parked until someone moves it back"),
        ("broken", "lost", "never completed and never will"),
        ("duplicated", "duplicate_executions", "completed more than once"),
        ("pending", "pending", "has not completed yet but still can"),
    ):
        hit = [r for r in rows if r["outcome"] == verdict]
        if hit:
            first = hit[0]
            role = "callback" if first["callback"] else "member"
            more = f" (and {len(hit) - 1} more)" if len(hit) > 1 else ""
            return outcome, f"{role} {first['path']} [{first['task']}] {says}{more}"
    return "completed", "every member completed once"


def workflow_reports(events: list[dict[str, Any]], tasks: dict[str, _Task]) -> list[WorkflowReport]:
    """Workflow outcomes from the ``workflow`` events and the members' per-task reports
    (already classified; waiting members are moved from ``lost`` to ``pending`` here)."""
    reports = []
    for event in events:
        if event.get("type") != WORKFLOW:
            continue
        tree = event["tree"]
        _settle_waiting(tree, tasks)
        rows = []
        for row in members(tree):
            report = tasks.get(row["task_id"])
            rows.append(row | {"outcome": report.outcome if report else "lost"})
        outcome, reason = _outcome(rows)
        first = rows[0]["index"] if rows else None
        reports.append(
            WorkflowReport(event["workflow"], tree["kind"], first, outcome, reason, rows)
        )
    return reports


def revoked_ids(events: list[dict[str, Any]]) -> dict[str, float]:
    """Revoked task id -> when the (first) revoke was recorded."""
    revoked: dict[str, float] = {}
    for event in events:
        if event.get("type") == REVOKE:
            revoked.setdefault(event["task_id"], event["ts"])
    return revoked


def revoked_but_ran(events: list[dict[str, Any]], tasks: dict[str, _Task]) -> list[str]:
    """Task ids revoked (``revoke`` event) with an attempt that started after the revoke."""
    ran = []
    for task_id, when in revoked_ids(events).items():
        report = tasks.get(task_id)
        if report is not None and any(a.started > when for a in report.attempts):
            ran.append(task_id)
    return ran
