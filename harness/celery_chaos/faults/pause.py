"""``pause`` freezes the whole worker (SIGSTOP / docker pause); ``resume`` thaws it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    Aim,
    Band,
    FaultKind,
    FaultPrimitives,
    FaultResult,
)

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


def pause(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    return FaultResult(INJECTED, placement.pause_worker(aim.worker, paused=True))


def resume(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    return FaultResult(INJECTED, placement.pause_worker(aim.worker, paused=False))


PAUSE = FaultKind(
    "pause",
    "freeze the whole worker",
    pause,
    band=Band("paused", "band-pause", until_undone=True),
    how={
        LOCAL: "SIGSTOP to the worker's process group",
        DOCKER: "`docker pause`",
    },
)
RESUME = FaultKind(
    "resume",
    "thaw a paused worker",
    resume,
    undoes="pause",
    how={LOCAL: "SIGCONT to the worker's process group", DOCKER: "`docker unpause`"},
)
