"""``scale_down``: an autoscaler removes ``count`` workers, each evicted with ``grace`` (SIGTERM,
SIGKILL after ``grace`` s if it still lives: :mod:`celery_chaos.faults.evict`).

Which workers go: the one named by ``target.worker`` first, then the busiest (most running
attempts; a tie goes to the newest worker, as a ReplicaSet scaling down prefers newer pods).
The first eviction is the fault's event; each further one is a follow-up at once, recorded as
its own event (its worker named in it, so its death is blamed on the fault).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    LOCAL,
    MISSED,
    Aim,
    FaultKind,
    FaultPrimitives,
    FaultResult,
    FollowUp,
    WorkerRef,
)
from celery_chaos.faults.evict import evict_worker
from celery_chaos.faults.params import Grace, Params, WorkerCount

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


class ScaleDownParams(Params):
    count: WorkerCount = 1  # workers removed
    grace: Grace = 30.0  # seconds from each SIGTERM to its SIGKILL


def chosen(placement: FaultPrimitives, aim: Aim, count: int, named: bool) -> list[WorkerRef]:
    """The ``count`` live workers to remove: the aimed one first when ``named``, then the
    busiest, newest first on a tie."""
    live = [w for w in placement.workers if placement.worker_exit_reason(w) is None]
    busy = Counter(a.worker for a in aim.running)
    ranked = sorted(live, key=lambda w: (busy[w.name], w.index), reverse=True)
    if named and aim.worker in ranked:
        ranked.remove(aim.worker)
        ranked.insert(0, aim.worker)
    return ranked[:count]


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    workers = chosen(placement, aim, fault.count, fault.target.worker is not None)
    if not workers:
        return FaultResult(MISSED, "no live worker to remove")
    result = evict_worker(placement, workers[0], fault.grace, fault.kind)
    for worker in workers[1:]:
        evict = partial(_evict, placement, worker, fault.grace, fault.kind)
        result.then.append(FollowUp(0.0, worker, "sigterm", evict))
    if len(workers) < fault.count:
        result.detail += f" (only {len(workers)} live worker(s) of {fault.count} to remove)"
    return result


def _evict(
    placement: FaultPrimitives, worker: WorkerRef, grace: float, by: str, aim: Aim
) -> FaultResult:
    return evict_worker(placement, worker, grace, by)


KIND = FaultKind(
    "scale_down",
    "an autoscaler removes `count` workers (the busiest), each evicted with `grace`",
    apply,
    params=ScaleDownParams,
    blame="worker",
    how={
        LOCAL: "`evict` on each removed worker (SIGTERM, SIGKILL of its group after `grace` s)",
        DOCKER: "`evict` on each removed container",
    },
)
