"""Processes the harness started: launched in their own process group, killed only by group.

Every process goes into a registry so an interrupted run (Ctrl-C, SIGTERM, an exception) can
still kill exactly what it started, and never anything else. A SIGKILL of the harness runs no
Python at all, so each process is also tied to the harness's life by the kernel: on Linux it gets
``PR_SET_PDEATHSIG`` (SIGKILL when the thread that started it dies) before it execs. Processes it
forks itself (Celery's pool children) are the watchdog's job (``watchdog.py``).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

_started: dict[int, subprocess.Popen] = {}


class ServerUnavailable(RuntimeError):
    """A server the run needs (ledger, broker) has no binary here or would not start."""


PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child SIGKILLed when the harness dies, or None where that
    is not possible. The kernel ties the signal to the *thread* that forks, so only a child forked
    by the main thread (or a thread marked by :func:`children_die_with_this_thread`) gets it (a
    helper thread ending must not kill a worker); the watchdog covers the rest."""
    if _libc is None or not _outlives_children():
        return None
    parent = os.getpid()
    prctl = _libc.prctl

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the harness died before prctl took effect
            os._exit(1)

    return preexec


_thread_flags = threading.local()


def children_die_with_this_thread() -> None:
    """Mark the calling thread as one that ends only after every process it started has been
    stopped (a pool thread of ``run --jobs``: it lives until the pool shuts down), so its
    children get ``PR_SET_PDEATHSIG`` as the main thread's do."""
    _thread_flags.outlives_children = True


def _outlives_children() -> bool:
    main = threading.current_thread() is threading.main_thread()
    return main or getattr(_thread_flags, "outlives_children", False)


def spawn(
    cmd: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    die_with_harness: bool = True,
    user: int | None = None,
) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new process group, output appended to ``log_path``.

    ``die_with_harness=False`` is for the one process meant to outlive the harness (the
    watchdog): no PDEATHSIG, and the exit-time sweep below leaves it to finish its cleanup.
    ``user``: run as that uid (and its primary group), for a server that refuses root."""
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        process = subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent() if die_with_harness else None,
            **_as_user(user),
        )
    finally:
        log.close()
    if die_with_harness:
        _started[process.pid] = process
    return process


def _as_user(uid: int | None) -> dict[str, Any]:
    """Popen's ``user``/``group``/``extra_groups`` for ``uid`` (empty: stay who we are). The
    switch happens before ``preexec_fn``, so the death signal still holds after it."""
    if uid is None:
        return {}
    import pwd

    return {"user": uid, "group": pwd.getpwuid(uid).pw_gid, "extra_groups": []}


def signal_group(process: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group we created for ``process`` (no-op if it is gone)."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def group_members(process: subprocess.Popen) -> list[int]:
    """PIDs still alive in ``process``'s group (children that outlived their parent included)."""
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == process.pid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """Stop the whole group: ``sig`` first, SIGKILL after ``grace`` seconds, then reap."""
    if process.poll() is None:
        signal_group(process, sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    signal_group(process, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while group_members(process) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.poll()
    _started.pop(process.pid, None)


def stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` from field 3 (state) on: after the command name,
    which may hold spaces and parentheses. Raises ``OSError`` (``FileNotFoundError``: no such
    process)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def zombie_status(pid: int) -> tuple[int, int] | None:
    """(process group, wait status) of ``pid`` while it is a zombie its parent has not reaped
    yet (``/proc/<pid>/stat`` fields 5 and 52, Linux >= 3.5), else None."""
    try:
        fields = stat_fields(pid)
    except OSError:
        return None
    if fields[0] != "Z" or len(fields) < 50:
        return None
    return int(fields[2]), int(fields[49])


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@atexit.register
def kill_all_started() -> None:
    """Last line of defence: SIGKILL every group we started that is still registered."""
    for process in list(_started.values()):
        signal_group(process, signal.SIGKILL)
        process.poll()
        _started.pop(process.pid, None)
