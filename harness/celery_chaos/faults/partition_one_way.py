"""``partition_one_way``: the worker's broker connections hold the bytes of one direction only,
as Toxiproxy's ``timeout`` toxic does: ``to_worker`` (the default) holds what the broker sends
(the reply to a waiting BRPOP, with the message Redis already removed from the queue) while the
worker's own commands still arrive; ``to_broker`` holds what the worker sends (its commands,
acks and heartbeats) while replies already under way still come. The connection stays open: no
error reaches either side. Held bytes flow on after ``duration`` s or a ``heal``.

A kind of its own rather than a ``direction`` on ``partition``: the docker placement carries a
``partition`` out by disconnecting the container's network (both directions, no proxy), so a
direction could not be honoured there; this kind needs the harness's proxy and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    Aim,
    FaultKind,
    FaultPrimitives,
    FaultResult,
)
from celery_chaos.faults.params import Duration, Params

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


class OneWayParams(Params):
    direction: Literal["to_worker", "to_broker"] = "to_worker"
    duration: Duration | None = None


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    detail = placement.hold_one_way(aim.worker, fault.direction, fault.duration)
    return FaultResult(INJECTED, detail)


KIND = FaultKind(
    "partition_one_way",
    "the worker's broker connections hold one direction (`direction`; for `duration` s)",
    apply,
    params=OneWayParams,
    proxied_on=frozenset({LOCAL, DOCKER}),
    placements=frozenset({LOCAL, DOCKER}),
    how={
        LOCAL: (
            "the worker's own TCP proxy holds the bytes of one direction (`to_worker`: the "
            "broker's replies; `to_broker`: the worker's commands); they flow on after `heal` or "
            "`duration` s"
        ),
        DOCKER: (
            "the worker container reaches the broker through its own TCP proxy in the harness "
            "(on the broker network's gateway), which holds the bytes of one direction; they "
            "flow on after `heal` or `duration` s"
        ),
    },
)
