"""`cleanup` after a crashed run finds the RabbitMQ processes whose harness died, by the owner
marker in their environment, and never a live run's. Plain ``sleep`` processes stand in for the
node (the marker, not the binary, is what is matched), so no Erlang VM is started here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery_chaos.placements.local import processes
from celery_chaos.placements.local.rabbitmq_server import (
    OWNER_ENV,
    kill_orphans,
    orphans,
    owner_marker,
)

pytestmark = pytest.mark.integration


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def stand_in(tmp_path: Path, owner: str) -> subprocess.Popen:
    env = {**os.environ, OWNER_ENV: owner}
    return processes.spawn(["sleep", "60"], tmp_path / "sleep.log", env=env)


def test_orphaned_node_processes_are_killed_and_live_ones_kept(tmp_path: Path) -> None:
    orphan = stand_in(tmp_path, f"{dead_pid()}:0.00")
    owned = stand_in(tmp_path, owner_marker(os.getpid()))
    try:
        deadline = time.monotonic() + 5
        while orphan.pid not in {p.pid for p in orphans()}:
            assert time.monotonic() < deadline, "the orphan was not found"
            time.sleep(0.02)
        assert owned.pid not in {p.pid for p in orphans()}
        killed = kill_orphans()
        assert any(f"pid {orphan.pid} " in line for line in killed)
        assert orphan.wait(timeout=5) == -signal.SIGKILL
        assert owned.poll() is None
    finally:
        processes.stop(orphan, sig=signal.SIGKILL, grace=2)
        processes.stop(owned, sig=signal.SIGKILL, grace=2)
