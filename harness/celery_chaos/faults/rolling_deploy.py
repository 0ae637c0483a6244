"""``rolling_deploy``: every live worker replaced one batch at a time, as a Kubernetes
Deployment's RollingUpdate with ``maxSurge: surge`` and ``maxUnavailable: 0`` does: ``surge``
new workers are started first, and once each of them reported ready, as many old ones are
evicted with ``grace`` (SIGTERM, SIGKILL after ``grace`` s: :mod:`celery_chaos.faults.evict`);
then the next batch. ``app``/``env`` give the new workers another code version (the old
messages still queued then meet the new code: a task whose signature changed).

Nothing here blocks the nemesis loop: the wait for readiness is a follow-up that polls the
ledger and asks again later. Events of the fault: the first batch's start (the fault's event),
``stage: sigterm`` per evicted old worker (its death blamed on the fault), ``stage: sigkill``
where a grace ran out, ``stage: surge`` per later batch. A new worker that exits before it is
ready halts the rollout there (its ``worker_exit`` is in the history), as a stuck Deployment does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
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

POLL = 0.1  # seconds between readiness checks of a batch
READY_DEADLINE = 60.0  # a new worker not ready by then halts the rollout (recorded)


class RollingDeployParams(Params):
    surge: WorkerCount = 1  # new workers started before old ones are evicted
    grace: Grace = 30.0  # seconds from each old worker's SIGTERM to its SIGKILL
    app: str | None = None  # the new version's app (default: the scenario's workers.app)
    env: dict[str, str] | None = None  # added to workers.env for the new workers


@dataclass
class Rollout:
    """A deploy under way: the old workers still to replace, in order."""

    placement: FaultPrimitives
    old: list[WorkerRef]
    surge: int
    grace: float
    by: str


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    old = [w for w in placement.workers if placement.worker_exit_reason(w) is None]
    if not old:
        return FaultResult(MISSED, "no live worker to replace")
    placement.deploy_version(fault.app, fault.env)
    return _surge(Rollout(placement, old, fault.surge, fault.grace, fault.kind))


def _surge(rollout: Rollout) -> FaultResult:
    """Start the next batch of new workers; a follow-up evicts old ones once they are ready."""
    new = [rollout.placement.launch_worker() for _ in range(min(rollout.surge, len(rollout.old)))]
    names = ", ".join(w.name for w in new)
    poll = _ready_poll(rollout, new, time.monotonic() + READY_DEADLINE)
    detail = f"started {names}; {len(rollout.old)} old worker(s) to replace"
    return FaultResult(INJECTED, detail, then=[poll], worker=new[0])


def _ready_poll(rollout: Rollout, new: list[WorkerRef], deadline: float) -> FollowUp:
    return FollowUp(POLL, new[0], "sigterm", partial(_when_ready, rollout, new, deadline))


def _when_ready(
    rollout: Rollout, new: list[WorkerRef], deadline: float, aim: Aim
) -> FaultResult | FollowUp:
    """Once every worker of the batch is ready, evict as many old ones (each with ``grace``)
    and schedule the next batch; before that, ask again later."""
    placement = rollout.placement
    waiting = [w.name for w in new if not placement.worker_ready(w)]
    if waiting and time.monotonic() > deadline:
        note = f"{', '.join(waiting)} not ready after {READY_DEADLINE:g}s: rollout halted"
        return FaultResult(MISSED, note, worker=new[0])
    if waiting:
        return _ready_poll(rollout, new, deadline)
    gone, rollout.old = rollout.old[: len(new)], rollout.old[len(new) :]
    result = evict_worker(placement, gone[0], rollout.grace, rollout.by)
    for worker in gone[1:]:
        evict = partial(_evict, placement, worker, rollout.grace, rollout.by)
        result.then.append(FollowUp(0.0, worker, "sigterm", evict))
    if rollout.old:
        result.then.append(FollowUp(0.0, new[0], "surge", lambda _: _surge(rollout)))
    return result


def _evict(
    placement: FaultPrimitives, worker: WorkerRef, grace: float, by: str, aim: Aim
) -> FaultResult:
    return evict_worker(placement, worker, grace, by)


KIND = FaultKind(
    "rolling_deploy",
    "every worker replaced: `surge` new ones (`app`/`env`: a new version) first, then old ones "
    "evicted with `grace`",
    apply,
    params=RollingDeployParams,
    needs_worker=False,
    blame="worker",
    starts_worker=True,
    how={
        LOCAL: (
            "start `surge` new workers (with `app`/`env`), once ready `evict` as many old ones "
            "(SIGTERM, SIGKILL of the group after `grace` s); repeat until all are new"
        ),
        DOCKER: "the same with containers (a new `app` must be importable in the worker image)",
    },
)
