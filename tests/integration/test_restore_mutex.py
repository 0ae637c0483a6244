"""Kombu's restore mutex on a real Redis broker with real workers: a worker SIGKILLed inside its
restore sweep leaves ``unacked_mutex`` held for ``unacked_mutex_expire`` (300 s), live workers
cannot take it, and the final broker inspection says so (the CI flake of scenario 16c: a task
left ``pending`` because no worker restored its message for the rest of the run).

The sweep runs every 10 ms here and holds the mutex for about a millisecond. A kill at a random
moment landed inside it in 5 of 30 kills on an idle machine, but under CI load 60 random kills
once missed every sweep; so the test watches the broker and SIGKILLs the worker's process group
the moment it sees the mutex taken (a fault at an exact point), and repeats until a kill lands
inside, within a bounded number of rounds."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from celery_chaos.brokers.redis import RESTORE_MUTEX_KEY, restore_blocked
from celery_chaos.core.checker import check
from celery_chaos.placements.local.placement import LocalPlacement

from tests.integration.scenario_support import workerless

pytestmark = pytest.mark.integration
MAX_KILLS = 60
WATCH_SECONDS = 2.0  # per round: how long to watch for the worker's sweep to take the mutex
SWEEP = {"visibility_timeout": 2, "unacked_restore_interval": 0.01, "unacked_restore_throttle": 1}


def kill_inside_a_sweep(backend: LocalPlacement) -> int:
    """Start workers and SIGKILL each the moment its sweep is seen holding the mutex, until one
    dies holding it; the number of kills it took."""
    client = backend.broker.client()
    for kills in range(1, MAX_KILLS + 1):
        worker = backend.start_worker()
        end = time.monotonic() + WATCH_SECONDS
        while client.get(RESTORE_MUTEX_KEY) is None and time.monotonic() < end:
            pass  # a GET is ~0.1 ms: the sweep holds the mutex for about ten of them
        os.killpg(worker.handle.pid, signal.SIGKILL)  # at once; kill_worker first lists members
        backend.kill_worker(worker)  # the placement's own kill: reaps the group
        if restore_blocked(client):
            return kills
    pytest.fail(f"no kill of {MAX_KILLS} landed inside a restore sweep")


def test_a_worker_killed_inside_its_restore_sweep_blocks_every_restore(tmp_path: Path) -> None:
    spec = workerless("restore-mutex", celery={"broker_transport_options": SWEEP})
    with LocalPlacement(spec, tmp_path, log=lambda _: None) as backend:
        backend.start()
        kill_inside_a_sweep(backend)
        client = backend.broker.client()
        owner, ttl = client.get(RESTORE_MUTEX_KEY), client.ttl(RESTORE_MUTEX_KEY)
        assert ttl > 250  # unacked_mutex_expire: 300 s
        backend.start_worker()  # a live worker sweeps every 10 ms and cannot take it
        time.sleep(0.5)
        assert client.get(RESTORE_MUTEX_KEY) == owner
        state = backend.broker.state()
        assert backend.ledger is not None
        verdicts = check(backend.ledger.read_all(), state)
    (note,) = verdicts.broker_notes
    assert "unacked_mutex is held for another" in note and "restore sweep" in note
