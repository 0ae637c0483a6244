"""``kill_worker``: SIGKILL the whole worker, main process and children."""

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
    cause = "SIGKILL by kill_worker fault (whole worker)"
    return FaultResult(INJECTED, placement.kill_worker(aim.worker), aim.hits(), "worker", cause)


KIND = FaultKind(
    "kill_worker",
    "SIGKILL the whole worker (main process and children)",
    apply,
    blame="worker",
    ends_worker=True,
    storm=StormRule("death"),
    repro=Repro(replacement=True),
    how={
        LOCAL: "SIGKILL the worker's whole process group (main + children)",
        DOCKER: "`docker kill` (SIGKILL)",
    },
)
