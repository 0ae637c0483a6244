"""A Redis Sentinel broker (a master, a replica, three Sentinels; real redis-server processes)
with real workers connected through ``sentinel://``, and the ``failover`` fault: the worker must
find the new master through the Sentinels, and the harness's own inspection must read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.adhoc_support import run
from tests.integration.scenario_support import run as run_suite
from tests.integration.sentinel_support import (
    assert_master_alive_failover,
    history,
    master_alive_spec,
)

pytestmark = pytest.mark.integration


def switched(tmp_path: Path) -> bool:
    """Whether a Sentinel logged the master's switch to the replica (the failover happened)."""
    logs = tmp_path.rglob("broker-sentinel-*.log")
    return any("+switch-master" in log.read_text(errors="replace") for log in logs)


def test_worker_follows_the_sentinels_to_the_new_master(tmp_path: Path) -> None:
    result = run_suite("33a-sentinel-failover-defaults.yaml", tmp_path)
    assert switched(tmp_path)
    events = history(tmp_path)
    (fault,) = [e for e in events if e["type"] == "fault"]
    assert fault["kind"] == "failover" and "SIGKILLed" in fault["detail"]
    assert not [e for e in events if e["type"] == "worker_exit"]  # the same worker, reconnected
    late = [t for t in result.verdicts.tasks if t.index in (1, 2)]
    assert [t.outcome for t in late] == ["ok", "ok"]  # sent after the promotion, consumed


def test_ack_late_worker_crashes_on_failover_and_the_new_master_holds_the_rest(
    tmp_path: Path,
) -> None:
    result = run_suite("33b-sentinel-failover-ack-late-crashes-worker.yaml", tmp_path)
    assert switched(tmp_path)
    (exit,) = [e for e in history(tmp_path) if e["type"] == "worker_exit"]
    assert exit["exitcode"] == 1  # Celery's "Unrecoverable error", on Kombu's restore:
    assert "'NoneType' object has no attribute 'hostname'" in exit["log_tail"][-1]
    (log,) = tmp_path.rglob("worker-w0.log")
    assert "Unrecoverable error: AttributeError" in log.read_text(errors="replace")
    # Both pending messages were found in a queue: the inspection asked the Sentinels and read
    # the promoted replica (the old master is dead, so reading it would be unreachable).
    pending = [line for line in result.explanations if line.startswith("pending")]
    assert len(pending) == 2 and all("queue:celery" in line for line in pending)


def test_sentinel_failover_with_the_master_alive(tmp_path: Path) -> None:
    result = run(tmp_path, **master_alive_spec())
    assert switched(tmp_path)
    assert_master_alive_failover(result, tmp_path)
