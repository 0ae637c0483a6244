"""The watchdog: a small process that outlives the harness just long enough to clean up after it.

``PR_SET_PDEATHSIG`` kills the processes the harness started itself, but not what *they* fork
(Celery's pool children keep running their task), and not cgroups. The local placement starts one
watchdog per run, in its own session (Ctrl-C in the terminal does not reach it), with the run's
state file. It waits on the harness (a pidfd: woken the moment the harness dies, whatever killed
it); if the harness dies while the state file still exists, the run did not close, so it removes
everything the state file names (see ``reaper.py``) and exits. A run that closes removes its
state file and stops the watchdog itself.

    python -m celery_chaos.placements.local.watchdog STATE_FILE
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from celery_chaos.placements.local import processes, reaper
from celery_chaos.placements.local.state import Identity, RunState

POLL = 0.25


def _wait_for_exit(pid: int, timeout: float) -> None:
    """Sleep up to ``timeout`` seconds, waking early if ``pid`` exits (where pidfds exist)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        time.sleep(timeout)
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def start(state: RunState, log_path: Path) -> subprocess.Popen:
    """Record the run, then start its watchdog (it reads the state file, so it must exist
    first; a harness that dies before the watchdog is up is still noticed by it)."""
    state.save()
    watchdog = processes.spawn(
        [sys.executable, "-m", "celery_chaos.placements.local.watchdog", str(state.path)],
        log_path,
        die_with_harness=False,
    )
    state.watchdog = Identity.of(watchdog.pid)
    state.save()
    return watchdog


def watch(path: Path) -> int:
    """Wait for the harness to die, then clean up if its run is still recorded."""
    while path.exists():
        try:
            state = RunState.load(path)
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(POLL)  # being replaced right now, or gone: look again
            continue
        if not state.harness.alive():
            for line in reaper.remove(state):
                print(f"watchdog: removed {line}", flush=True)
            return 0
        _wait_for_exit(state.harness.pid, POLL)
    return 0


if __name__ == "__main__":
    sys.exit(watch(Path(sys.argv[1])))
