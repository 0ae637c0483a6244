"""gevent and eventlet pools on the local backend: real workers, real SIGKILLs. On a green pool
the task runs in the worker's own process, so a kill is a whole-worker kill, and a CPU-bound task
stalls every greenlet of its worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.core.conclusion import PASSED

from tests.integration.scenario_support import run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "name", ["24a-gevent-kill-is-whole-worker.yaml", "24b-eventlet-kill-is-whole-worker.yaml"]
)
def test_green_pool_kill_is_a_whole_worker_kill_and_is_never_restored(
    name: str, tmp_path: Path
) -> None:
    result = run(name, tmp_path)
    assert any("kills the whole worker" in line for line in result.schedule)
    fault = next(f for f in result.verdicts.faults if f["kind"] == "kill_child")
    assert fault["blame"] == "worker" and len(fault["hits"]) == 4  # every task on the worker
    for task in result.verdicts.tasks:
        assert task.outcome == "pending" and task.in_broker == ["unacked"]
        assert len(task.attempts) == 1  # the replacement never got them back
    assert result.status == PASSED


def test_longer_polling_interval_lets_a_gevent_worker_restore(tmp_path: Path) -> None:
    result = run("24c-gevent-kill-polling-interval-restores.yaml", tmp_path)
    for task in result.verdicts.tasks:
        assert task.outcome == "recovered"
        assert task.attempts[0].worker != task.attempts[-1].worker
    assert result.status == PASSED


def test_hub_blocking_task_stalls_the_other_greenlets(tmp_path: Path) -> None:
    result = run("25-gevent-hub-blocking-task.yaml", tmp_path)
    spin = next(t for t in result.verdicts.tasks if t.task.endswith(".spin"))
    spin_start = spin.attempts[0].started
    stalled = [
        t
        for t in result.verdicts.tasks
        if t.task.endswith(".work") and t.attempts[0].ended - t.attempts[0].started >= 2.5
    ]
    assert spin_start is not None and len(stalled) == 3  # 1 s of work took the spin's 3 s
    assert result.status == PASSED
