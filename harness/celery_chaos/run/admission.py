"""When the default ``celery-chaos run`` (``--jobs auto``) starts one more scenario: when the
machine has room, not when a count of CPUs says so.

Why: the built-in suite mostly waits (visibility timeouts, restore sweeps, quiet windows): one per
CPU used 26 % of two cores (issue 22). A scenario's cost is a burst while its servers and workers
start, then little. So a scenario starts when the CPUs were less than {busy:.0%} busy over the
last {window:g} s, more than {memory} GiB of memory is available, and {settle:g} s have passed
since the previous start (its burst shows in the CPU figure by then); at most {per_cpu} per CPU.
A machine other jobs keep busy gets fewer scenarios at once, so the wall-clock budgets verdicts
rest on (visibility timeouts, ``worker_lost_wait``, timeouts) do not stretch. The first scenario
always starts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil

BUSY_LIMIT = 0.85  # fraction of all CPUs busy over the window above which nothing new starts
WINDOW = 1.0  # seconds of CPU history one decision looks at
SETTLE = 0.5  # seconds between two starts: lets the last start-up burst show in the CPU figure
MEMORY_FLOOR = 1 << 30  # bytes that must stay available (a scenario's servers and workers)
CAP_PER_CPU = 8  # at most this many scenarios per CPU, however idle the machine looks


__doc__ = __doc__.format(
    busy=BUSY_LIMIT, window=WINDOW, memory=MEMORY_FLOOR >> 30, settle=SETTLE, per_cpu=CAP_PER_CPU
)


def auto_cap() -> int:
    """The most scenarios ``--jobs auto`` runs at once."""
    return CAP_PER_CPU * (os.cpu_count() or 1)


@dataclass
class Admission:
    """Says whether one more scenario may start now."""

    cap: int
    busy_limit: float = BUSY_LIMIT
    memory_floor: int = MEMORY_FLOOR
    last_start: float = field(default=float("-inf"))
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (when, busy, all)

    def room(self, running: int) -> bool:
        """Whether a scenario may start beside ``running`` others (the first always may)."""
        busy = self.cpu_busy()
        if running == 0:
            return True
        if running >= self.cap or time.monotonic() - self.last_start < SETTLE:
            return False
        if busy is None or busy > self.busy_limit:
            return False
        return psutil.virtual_memory().available > self.memory_floor

    def started(self) -> None:
        self.last_start = time.monotonic()

    def cpu_busy(self) -> float | None:
        """Fraction of all CPUs busy over the last ``WINDOW`` seconds (None until a window has
        passed since the first sample)."""
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        now = time.monotonic()
        self.samples.append((now, sum(times) - idle, sum(times)))
        while len(self.samples) > 2 and now - self.samples[1][0] >= WINDOW:
            self.samples.pop(0)
        then, busy_then, all_then = self.samples[0]
        if now - then < WINDOW or self.samples[-1][2] <= all_then:
            return None
        _, busy_now, all_now = self.samples[-1]
        return (busy_now - busy_then) / (all_now - all_then)


__all__ = ["Admission", "auto_cap"]
