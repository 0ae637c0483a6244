"""Why the app's state broke, in the user's terms: one line per broken invariant (its value
against its ``expect``, what was read and when) and per ``result_not_stored`` task (which
result backend, and what a client polling ``AsyncResult`` sees). Pure, like
:mod:`celery_chaos.core.explain`, which calls it; never reads a scenario's ``expect``.
"""

from __future__ import annotations

from typing import Any

from celery_chaos.core.explain_facts import task_name
from celery_chaos.core.invariants import expect_text, number_text, stored_text
from celery_chaos.core.verdicts import TaskReport, Verdicts

EXPLAINED_APP = ("invariant_violations", "result_not_stored")


def _reading(judged: dict[str, Any], value: float | None) -> str:
    """What was read, worded by kind: a query's result, a count of keys or of files."""
    shown = number_text(value)
    if judged["kind"] == "sql":
        return f"{judged['query']!r} returned {shown}"
    if judged["kind"] == "redis":
        return f"{shown} Redis key(s) matched {judged['query']!r}"
    return f"{shown} file(s) matched {judged['query']!r} in the workers' working directory"


def _killed_mid_task(task: TaskReport) -> bool:
    """An attempt that died before it ended (a process that exits after its task ended, e.g.
    a worker container stopped later, interrupted nothing)."""
    return any(a.died is not None and a.ended is None for a in task.attempts)


def _interrupted(tasks: list[TaskReport]) -> str:
    """What the faults did to the tasks: the usual cause of state a task left half-written."""
    hit = [task for task in tasks if _killed_mid_task(task)]
    if not hit:
        return "no attempt was interrupted, so the tasks themselves left this state"
    names = ", ".join(task_name(task) for task in hit[:3]) + (" ..." if len(hit) > 3 else "")
    return (
        f"{len(hit)} task(s) had an attempt killed mid-task ({names}): what a killed attempt"
        " wrote stays unless a later attempt repairs it"
    )


def invariant_reason(judged: dict[str, Any], tasks: list[TaskReport]) -> str:
    expected = f"expected {expect_text(judged['expect'])}"
    if judged["value"] is None:
        return (
            f"could not be read ({judged.get('error') or 'no value'}), so it counts as broken;"
            f" would change it: a {judged['kind']} reading that works against this run's"
            " services (the query, the table or key names, the service in services:)"
        )
    if judged.get("during") and judged["worst"] != judged["value"]:
        head = (
            f"while faults were active {_reading(judged, judged['worst'])}, {expected}"
            f" (by the end: {number_text(judged['value'])}): a reader during the faults saw"
            " the broken state"
        )
    else:
        reading = _reading(judged, judged["value"])
        head = f"after the run, with the workers frozen, {reading}, {expected}"
    if not any(_killed_mid_task(task) for task in tasks):
        return f"{head}; {_interrupted(tasks)}; would change it: the tasks' own code"
    return (
        f"{head}; {_interrupted(tasks)}; would change it: a task that writes its result last"
        " (in one transaction) and cleans up or redoes what a killed attempt left, with"
        " task_acks_late + task_reject_on_worker_lost so a killed attempt runs again"
    )


def not_stored_reason(task: TaskReport, state: str, backend: str | None) -> str:
    where = f"the result backend {backend}" if backend else "the app's result backend"
    holds = stored_text(state)
    holds += " for it" if holds.startswith("holds ") else ""
    return (
        f"it completed (SUCCESS) but {where} {holds}: the worker could not store its result"
        " (its log shows the backend error, e.g. ConnectionError), so a client polling"
        f" AsyncResult({task.task_id!r}) never sees SUCCESS; would change it: a result"
        " backend the workers can reach (or ignore_result=True on a task nobody polls)"
    )


def app_lines(verdicts: Verdicts) -> list[str]:
    """``invariant_violations <name>: ...`` and ``result_not_stored <task>: ...`` lines."""
    lines = [
        f"invariant_violations {judged['name']}: {invariant_reason(judged, verdicts.tasks)}"
        for judged in verdicts.invariants
        if not judged["held"]
    ]
    tasks = {task.task_id: task for task in verdicts.tasks}
    for task_id in verdicts.result_not_stored:
        task = tasks.get(task_id) or TaskReport(task_id=task_id, index=None, task="?")
        state = verdicts.result_states.get(task_id, "PENDING")
        reason = not_stored_reason(task, state, verdicts.result_backend)
        lines.append(f"result_not_stored {task_name(task)}: {reason}")
    return lines
