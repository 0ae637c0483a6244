"""Judging the app's state: each invariant's measured value against its ``expect``, and the
tasks whose result the app's result backend never stored. Pure: values in, findings out.

- ``invariant_violations``: an invariant whose value is outside its ``expect`` (a number, met
  exactly, or ``{min, max}``), or that could not be read (no value is never a held invariant).
  A ``during: true`` invariant also breaks when any sample taken while faults were active broke;
  its ``worst`` is the value farthest outside ``expect`` (else the final value).
- ``result_not_stored``: a task with an attempt that ended in SUCCESS and said it stores its
  result (``stores_result`` on its ``attempt_start``: not ``ignore_result``, a real result
  backend), while the backend, read after the run, holds another state for it (PENDING: a
  client polling ``AsyncResult`` never sees SUCCESS). Judged only when the run read the backend.

The checker (:mod:`celery_chaos.core.checker`) calls these; like it, they never read a
scenario's expectations: an invariant's ``expect`` is part of the invariant, not of ``expect``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from celery_chaos.core.app_state import UNREADABLE, AppState, Expected, InvariantValue

NOT_READ = "not read"  # a result_not_stored task the run read no state for

if TYPE_CHECKING:  # core.verdicts words its offenders with broken_text: no import cycle
    from celery_chaos.core.verdicts import TaskReport, Verdicts


def _bounds(expect: Expected) -> tuple[float | None, float | None]:
    if isinstance(expect, dict):
        return expect.get("min"), expect.get("max")
    return expect, expect


def _distance(value: float | None, expect: Expected) -> float:
    """How far ``value`` lies outside ``expect`` (0: inside; unreadable: infinitely far)."""
    if value is None:
        return float("inf")
    low, high = _bounds(expect)
    if low is not None and value < low:
        return low - value
    if high is not None and value > high:
        return value - high
    return 0.0


def number_text(value: float | None) -> str:
    """``2.0`` as ``2``: counts read as counts; an unreadable value as ``unreadable``."""
    if value is None:
        return "unreadable"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def expect_text(expect: Expected) -> str:
    """``0``, ``between 3 and 3``, ``at least 1``, ``at most 2``: how a report words it."""
    low, high = _bounds(expect)
    if not isinstance(expect, dict):
        return number_text(expect)
    if low is not None and high is not None:
        return f"between {number_text(low)} and {number_text(high)}"
    if low is not None:
        return f"at least {number_text(low)}"
    return f"at most {number_text(high)}" if high is not None else "any value"


def judge(value: InvariantValue) -> dict[str, Any]:
    """One invariant's verdict: ``{name, kind, query, value, worst, expect, held, error}``."""
    dump = getattr(value.expect, "model_dump", None)  # a scenario's Range, passed on as is
    expect = dump() if dump is not None else value.expect
    readings = [*value.samples, value.value] if value.during else [value.value]
    worst = max(readings, key=lambda reading: _distance(reading, expect))
    if _distance(worst, expect) == 0:
        worst = value.value
    held = all(_distance(reading, expect) == 0 for reading in readings)
    error = value.error if value.value is not None or value.error else "could not be read"
    return {
        "name": value.name,
        "kind": value.kind,
        "query": value.query,
        "value": value.value,
        "worst": worst,
        "expect": expect,
        "held": held,
        "error": error,
        "during": value.during,
        "samples": len(value.samples),
    }


def broken_text(judged: dict[str, Any]) -> str:
    """``invariant no-stuck-document = 2 (expected 0)``: one broken invariant, in a report."""
    shown = judged["worst"] if judged.get("during") else judged["value"]
    text = f"invariant {judged['name']} = {number_text(shown)}"
    if judged.get("during") and judged["worst"] != judged["value"]:
        text += f" while faults were active (final {number_text(judged['value'])})"
    text += f" (expected {expect_text(judged['expect'])})"
    return text + (f": {judged['error']}" if judged.get("error") else "")


def stored_text(state: str) -> str:
    """What the result backend holds for a task, after "the result backend": ``holds PENDING``,
    ``could not be read (unreadable: ...)``, ``showed no state for it``."""
    if state.startswith(UNREADABLE):
        return f"could not be read ({state})"
    if state == NOT_READ:
        return "showed no state for it"
    return f"holds {state}"


def results_not_stored(tasks: Iterable[TaskReport], stored: dict[str, str] | None) -> list[str]:
    """Task ids whose SUCCESS the result backend does not hold (``result_not_stored``)."""
    if stored is None:
        return []
    return [
        task.task_id
        for task in tasks
        if any(a.state == "SUCCESS" and a.stores_result for a in task.attempts)
        and stored.get(task.task_id) != "SUCCESS"
    ]


def judge_app_state(verdicts: Verdicts, app_state: AppState | None) -> Verdicts:
    """``verdicts`` with the app's state judged into them: the judged invariants, the
    ``result_not_stored`` task ids and what the backend holds for each (``"not read"`` when
    the run has no state for it), and both findings counted."""
    judged = [judge(value) for value in app_state.invariants] if app_state else []
    stored = app_state.results if app_state else None
    missing = results_not_stored(verdicts.tasks, stored)
    verdicts.invariants, verdicts.result_not_stored = judged, missing
    verdicts.result_states = {task_id: (stored or {}).get(task_id, NOT_READ) for task_id in missing}
    verdicts.result_backend = app_state.result_backend if app_state else None
    verdicts.counts["invariant_violations"] = sum(1 for j in judged if not j["held"])
    verdicts.counts["result_not_stored"] = len(missing)
    return verdicts
