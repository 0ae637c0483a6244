"""``bandwidth``: hold the worker's broker traffic to ``rate`` bytes/s each way, for
``duration`` s (none: until the run ends), through the harness's proxy."""

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
)
from celery_chaos.faults.params import Rate, TimedParams, parse_size

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


class BandwidthParams(TimedParams):
    rate: Rate = "16k"  # bytes per second, each way


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    rate = parse_size(fault.rate)
    return FaultResult(INJECTED, placement.limit_bandwidth(aim.worker, rate, fault.duration))


KIND = FaultKind(
    "bandwidth",
    "limit the worker's broker traffic to `rate` bytes/s each way, for `duration` s",
    apply,
    params=BandwidthParams,
    proxied_on=PLACEMENTS,
    how={
        LOCAL: (
            "the worker's proxy forwards at most `rate` bytes/s (default `16k`) in each "
            "direction, paced in twentieths of a second, for `duration` s (else until the run "
            "ends)"
        ),
        DOCKER: "the same, through the same proxy (below)",
    },
)
