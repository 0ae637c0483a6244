"""The app's state as the run measured it: invariant values and the result backend's record.

The run collects these (run.app_state, run.results_state) with the workers frozen; the checker
judges them (core.invariants, core.checker) without reading a scenario's ``expect``. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What an invariant's value is compared with: a number (exactly) or {"min": a, "max": b}.
Expected = int | float | dict[str, Any]
# A stored result state that could not be read (prefix of ``AppState.results`` values).
UNREADABLE = "unreadable"


@dataclass
class InvariantValue:
    """One invariant as measured: its definition's name, kind and ``expect``, and the value.

    ``value`` is None when the state could not be read (``error`` says why): a broken invariant,
    never a held one. ``during`` invariants carry every sample's value; the judge reports the
    worst of them and the final value."""

    name: str
    kind: str  # "sql" | "redis" | "path"
    query: str  # the SQL, key pattern or glob, placeholders filled in
    expect: Expected
    value: float | None
    error: str | None = None
    during: bool = False
    samples: list[float] = field(default_factory=list)


@dataclass
class AppState:
    """Everything the run read of the app's state after the workload."""

    invariants: list[InvariantValue] = field(default_factory=list)
    # task_id -> the state the app's result backend holds for it ("SUCCESS", "PENDING", ...,
    # or "unreadable: <why>"), read for tasks whose attempt stored a result. None: not read
    # (no result backend, or the run could not tell which).
    results: dict[str, str] | None = None
    # The result backend the workers used, credentials masked, for explanations.
    result_backend: str | None = None
