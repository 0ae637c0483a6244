"""``evict``: SIGTERM to the worker, then SIGKILL after ``grace`` seconds if it still lives, as
Kubernetes (terminationGracePeriodSeconds), systemd (TimeoutStopSec) and a PaaS restart do.

The SIGTERM is the fault's event; the SIGKILL is a follow-up the nemesis carries out ``grace`` s
later (the loop goes on meanwhile) and records as a second event of the same fault
(``stage: sigkill``). A worker that exits on its own first is not killed: its ``worker_exit``
event is the moment it ended. Both deaths are the fault's doing (``blame: worker``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    Aim,
    FaultKind,
    FaultPrimitives,
    FaultResult,
    FollowUp,
    Repro,
    WorkerRef,
)
from celery_chaos.faults.params import Grace, Params

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import Fault


class EvictParams(Params):
    grace: Grace = 30.0  # seconds from SIGTERM to SIGKILL (Kubernetes' default: 30)


def evict_worker(
    placement: FaultPrimitives, worker: WorkerRef, grace: float, by: str
) -> FaultResult:
    """SIGTERM to ``worker`` now, and its SIGKILL ``grace`` s later as a follow-up; ``by``: the
    fault kind, named in the cause of each death."""
    detail = placement.signal_worker(worker, "SIGTERM")
    kill = FollowUp(grace, worker, "sigkill", partial(_escalate, placement, worker, grace, by))
    note = f"{detail}; SIGKILL in {grace:g}s unless it exits"
    return FaultResult(INJECTED, note, [], "worker", f"SIGTERM by {by} fault", [kill], worker)


def _escalate(
    placement: FaultPrimitives, worker: WorkerRef, grace: float, by: str, aim: Aim
) -> FaultResult | None:
    """The grace period expired: SIGKILL the worker if it still lives (None: it had exited)."""
    if placement.worker_exit_reason(worker) is not None:
        return None
    detail = placement.kill_worker(worker)
    cause = f"SIGKILL by {by} fault (still running {grace:g}s after SIGTERM)"
    return FaultResult(INJECTED, f"{detail}: grace {grace:g}s expired", aim.hits(), "worker", cause)


def apply(
    placement: FaultPrimitives, fault: Fault, aim: Aim, release: Callable[[], None]
) -> FaultResult:
    assert aim.worker is not None
    return evict_worker(placement, aim.worker, fault.grace, fault.kind)


KIND = FaultKind(
    "evict",
    "SIGTERM to the worker, SIGKILL after `grace` s if it still lives (a pod eviction)",
    apply,
    params=EvictParams,
    blame="worker",
    repro=Repro(replacement=True),
    how={
        LOCAL: (
            "SIGTERM to the worker's main process (the shell, with `workers.entrypoint`), then "
            "SIGKILL to its whole process group after `grace` s if it still lives"
        ),
        DOCKER: "signal to the container, then `docker kill` after `grace` s (`docker stop -t`)",
    },
)
