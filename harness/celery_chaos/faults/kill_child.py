"""``kill_child``: SIGKILL the pool process running the task (on a pool without child
processes that process is the worker: the whole worker dies, and is blamed as such)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from celery_chaos.faults.base import (
    DOCKER,
    INJECTED,
    LOCAL,
    WHOLE_WORKER_POOLS,
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
    assert aim.worker is not None and aim.attempt is not None
    pool = placement.scenario.workers.pool
    if pool in WHOLE_WORKER_POOLS:  # the task runs in the worker's own process
        detail = placement.kill_worker(aim.worker)
        cause = f"SIGKILL by kill_child fault (pool {pool}: the whole worker)"
        return FaultResult(INJECTED, detail, aim.hits(), "worker", cause)
    detail = placement.kill_pool_process(aim.worker, aim.attempt.pid)
    return FaultResult(INJECTED, detail, aim.attempt_hit(), "pid", "SIGKILL by kill_child fault")


KIND = FaultKind(
    "kill_child",
    "SIGKILL the pool process running the task",
    apply,
    needs_task=True,
    blame="pid",
    destructive=False,  # the worker starts a new pool process: the environment stays usable
    storm=StormRule("attempt", poolless_as="kill_worker"),
    repro=Repro(),
    how={
        LOCAL: (
            "SIGKILL the pool process running the target task (pid from the ledger, checked to "
            "belong to our worker)"
        ),
        DOCKER: "SIGKILL the pool process inside the container",
    },
)
