"""``restart_worker``: SIGKILL the worker, then start a replacement (a new worker index)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
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
    detail = placement.kill_worker(aim.worker)
    started = placement.start_worker()
    cause = "SIGKILL by restart_worker fault"
    return FaultResult(INJECTED, f"{detail}; started {started.name}", aim.hits(), "worker", cause)


KIND = FaultKind(
    "restart_worker",
    "SIGKILL the worker, then start a replacement",
    apply,
    blame="worker",
    ends_worker=True,
    starts_worker=True,
    storm=StormRule("replace"),
    repro=Repro(),
    how={
        LOCAL: "SIGKILL the worker, then start a replacement",
        DOCKER: "same with containers",
    },
)
