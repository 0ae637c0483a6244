"""A process's identity (pid + start time) must not move when the wall clock does: psutil's
``create_time()`` adds ``/proc/stat``'s ``btime``, a whole number of seconds the kernel
recomputes from the wall clock, and a CI run saw every live run's watchdog take its harness for
dead at once (placements/local/state.py, ``start_time``)."""

from __future__ import annotations

import os
import sys

import psutil
import pytest
from celery_chaos.placements.local.state import Identity, start_time

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_an_identity_survives_a_step_of_the_boot_time(monkeypatch: pytest.MonkeyPatch) -> None:
    me = Identity.of(os.getpid())
    assert me is not None and me.alive()
    from psutil import _pslinux

    real = _pslinux.boot_time()
    # What btime says once the wall clock stepped (or slewed) across a second boundary.
    monkeypatch.setattr(_pslinux, "boot_time", lambda: real + 1.0)
    assert abs(psutil.Process().create_time() - (real + 1.0 + me.started)) < 0.02  # it moved
    assert me.alive() and me.matches(psutil.Process())  # the identity did not


def test_start_time_is_seconds_since_boot_and_tells_processes_apart() -> None:
    mine, parent = start_time(os.getpid()), start_time(os.getppid())
    with open("/proc/uptime") as uptime:
        assert 0 <= parent <= mine <= float(uptime.read().split()[0]) + 0.01
    with pytest.raises(psutil.NoSuchProcess):
        start_time(2**22 + 12345)  # above pid_max: never a process
