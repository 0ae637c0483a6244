"""``terminate``: SIGTERM to the worker's main process (warm shutdown)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    INJECTED,
    Aim,
    FaultKind,
    FaultPrimitives,
    FaultResult,
    Repro,
    StormRule,
)

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    detail = placement.signal_worker(aim.worker, "SIGTERM")
    return FaultResult(INJECTED, detail, [], "worker", f"SIGTERM by {fault.kind} fault")


KIND = FaultKind(
    "terminate",
    "SIGTERM to the worker (warm shutdown)",
    apply,
    blame="worker",
    storm=StormRule("death"),
    repro=Repro(replacement=True),
)
