"""Removes what a dead local-placement run left behind, using only its state file.

Which processes are the run's:

- a recorded group leader whose pid *and* start time match the record;
- a member of a recorded process group (Celery's pool children, forked by the worker, are never
  recorded one by one) that started no earlier than the recorded leader, unless the group id was
  handed to someone else since (a live process has the leader's pid but another start time: the
  kernel reuses a pid as a group id only once the old group is empty);
- a process in one of the run's memory cgroups (their names are unique to the run).

Nothing is ever chosen by name. Used by the watchdog (the moment the harness dies) and by
``celery-chaos cleanup`` (for runs whose watchdog died too).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import psutil

from celery_chaos.placements.local.cgroups import remove_cgroup
from celery_chaos.placements.local.state import Group, RunState, recorded_runs, start_time

KILL_DEADLINE = 10.0


def _live_groups(groups: list[Group]) -> dict[int, Group]:
    """The recorded groups whose id still belongs to us, by group id."""
    live = {}
    for group in groups:
        holder = _existing(group.leader.pid)
        if holder is None or group.leader.matches(holder):
            live[group.leader.pid] = group  # else the pid (so the group id) is someone else's
    return live


def _group_members(groups: list[Group]) -> list[tuple[str, psutil.Process]]:
    """Live members of the recorded groups, started no earlier than their recorded leader (one
    pass over the process table)."""
    live = _live_groups(groups)
    members = []
    for process in psutil.process_iter(["status"]) if live else []:
        try:
            group = live.get(os.getpgid(process.pid))
            if (
                group is not None
                and start_time(process.pid) >= group.leader.started - 0.01
                and process.info["status"] != psutil.STATUS_ZOMBIE
            ):
                members.append((group.role, process))
        except (OSError, psutil.Error):
            continue
    return members


def _existing(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _cgroup_members(path: str) -> list[psutil.Process]:
    try:
        pids = [int(p) for p in (Path(path) / "cgroup.procs").read_text().split()]
    except OSError:
        return []
    return [p for p in map(_existing, pids) if p is not None]


def leftovers(state: RunState) -> dict[int, tuple[str, psutil.Process]]:
    """The run's processes that are still alive, by pid, each with the role it belongs to."""
    found: dict[int, tuple[str, psutil.Process]] = {}
    for role, process in _group_members(state.groups):
        found.setdefault(process.pid, (role, process))
    for path in state.cgroups:
        for process in _cgroup_members(path):
            found.setdefault(process.pid, (f"cgroup {Path(path).name}", process))
    if state.watchdog is not None and state.watchdog.pid != os.getpid():
        watchdog = state.watchdog.process()
        if watchdog is not None:
            found.setdefault(watchdog.pid, ("watchdog", watchdog))
    return found


def remove(state: RunState) -> list[str]:
    """SIGKILL every leftover process of ``state`` (until none is left), remove its cgroups and
    its state file. Returns one line per thing removed."""
    removed: list[str] = []
    deadline = time.monotonic() + KILL_DEADLINE
    while (found := leftovers(state)) and time.monotonic() < deadline:
        for pid, (role, process) in found.items():
            try:
                process.send_signal(signal.SIGKILL)
                removed.append(f"process {pid} ({role}) of run {state.run_id}")
            except psutil.Error:
                continue
        psutil.wait_procs([p for _, p in found.values()], timeout=1)
    removed += empty_cgroups(state.cgroups)
    for folder in state.folders:
        if Path(folder).exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"folder {folder}")
    state.discard()
    return sorted(set(removed))


def empty_cgroups(paths: list[str]) -> list[str]:
    """SIGKILL whatever is still in each cgroup, then remove it (retrying while its processes
    are torn down). Returns one line per cgroup removed."""
    removed = []
    for path in paths:
        members = _cgroup_members(path)
        for process in members:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.Error:
                continue
        psutil.wait_procs(members, timeout=KILL_DEADLINE)
        if remove_cgroup(path, KILL_DEADLINE):
            removed.append(f"cgroup {path}")
    return removed


def cleanup_dead_runs(run_id: str | None = None) -> tuple[list[str], list[str]]:
    """Remove the leftovers of every recorded run whose harness is gone (or only ``run_id``).
    Returns (lines removed, lines about runs left alone because they are still running)."""
    removed, skipped = [], []
    for path, state in recorded_runs():
        if state is None:
            skipped.append(f"{path}: unreadable state file, left alone")
            continue
        if run_id is not None and state.run_id != run_id:
            continue
        if state.harness.alive():
            skipped.append(f"run {state.run_id} is still running (harness pid {state.harness.pid})")
            continue
        removed += remove(state)
        removed.append(f"state file {path}")
    return removed, skipped
