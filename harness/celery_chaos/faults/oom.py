"""``oom``: lower the worker's memory limit to usage + ``headroom`` and let the task go on, so
the kernel's OOM killer kills it (any process of the worker's cgroup: the kernel chooses)."""

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
    Repro,
)
from celery_chaos.faults.params import Headroom, Params, Wait, parse_size

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


class OomParams(Params):
    headroom: Headroom = "48M"  # memory above the worker's usage when the limit drops
    wait: Wait = 30.0  # seconds to wait for the kernel's kill before the limit is lifted


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None and aim.attempt is not None
    detail = placement.oom(aim.worker, parse_size(fault.headroom), fault.wait, release)
    died = not placement.process_alive(aim.worker, aim.attempt.pid)
    return FaultResult(INJECTED, detail, aim.attempt_hit() if died else [])


KIND = FaultKind(
    "oom",
    "kernel OOM kill via the memory limit",
    apply,
    params=OomParams,
    needs_task=True,
    blame="cgroup",
    band=Band("memory limited", "band-oom"),
    memory_cgroup=True,
    repro=Repro(),
    how={
        LOCAL: (
            "lower the worker's cgroup memory limit to usage + `headroom`, let the task grow, "
            "wait for the **kernel OOM kill**, lift the limit"
        ),
        DOCKER: "the same with the container's memory limit; `OOMKilled` reported by the engine",
    },
)
