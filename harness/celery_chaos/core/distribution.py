"""The redelivery latency distribution of a run (a storm's headline figure, every run has it)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery_chaos.core.checker import TaskReport

__all__ = ["redelivery_distribution"]


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def redelivery_distribution(tasks: list[TaskReport]) -> dict[str, float | int | None]:
    """How long interrupted tasks waited to run again (fault or death -> next attempt_start):
    p50/p95/max over every redelivery of the run (None when nothing was redelivered)."""
    ordered = sorted(latency for task in tasks for latency in task.redelivery_latencies)
    if not ordered:
        return {"count": 0, "p50": None, "p95": None, "max": None}
    return {
        "count": len(ordered),
        "p50": _percentile(ordered, 0.50),
        "p95": _percentile(ordered, 0.95),
        "max": ordered[-1],
    }
