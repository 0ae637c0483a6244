"""``start_worker``: start one more worker (a new worker index), waiting until it is ready
unless ``wait_ready: false`` (a supervisor's restart: the run goes on while it boots)."""

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
)
from celery_chaos.faults.params import Params

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


class StartWorkerParams(Params):
    wait_ready: bool = True


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    if not fault.wait_ready:
        return FaultResult(INJECTED, f"launched {placement.launch_worker().name} (not waited for)")
    return FaultResult(INJECTED, f"started {placement.start_worker().name}")


KIND = FaultKind(
    "start_worker",
    "start one more worker",
    apply,
    params=StartWorkerParams,
    needs_worker=False,
    starts_worker=True,
    how={
        LOCAL: "start one more worker (a supervisor bringing a replacement)",
        DOCKER: "start one more container",
    },
)
