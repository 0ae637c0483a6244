"""``latency``: delay the worker's broker traffic by ``latency`` s, for ``duration`` s (none:
until the run ends), through the harness's proxy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    PLACEMENTS,
    Aim,
    FaultKind,
    FaultPrimitives,
    FaultResult,
    Repro,
    StormRule,
)
from celery_chaos.faults.params import Latency, TimedParams

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


class LatencyParams(TimedParams):
    latency: Latency = 0.2  # seconds added to each direction's traffic


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    return FaultResult(INJECTED, placement.add_latency(aim.worker, fault.latency, fault.duration))


KIND = FaultKind(
    "latency",
    "add `latency` s to the worker's broker traffic, for `duration` s",
    apply,
    params=LatencyParams,
    proxied_on=PLACEMENTS,
    storm=StormRule("worker", needs_duration=True),
    repro=Repro(timed=True),
    how={
        LOCAL: (
            "the worker's proxy holds each chunk of broker traffic `latency` s (default 0.2) in "
            "each direction, for `duration` s (else until the run ends)"
        ),
        DOCKER: "the same, through the same proxy (below)",
    },
)
