"""Memory cgroups for workers, so the kernel's OOM killer (not us) kills the task.

Supports cgroup v2 (``memory.max``, ``memory.events``; most current machines) and cgroup v1
(``memory.limit_in_bytes``, ``memory.oom_control``; older hosts and some CI sandboxes). A worker
is placed in its cgroup *before* it execs, so every pool child it forks is inside too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
UNLIMITED = -1


class CgroupUnavailable(RuntimeError):
    """No writable memory cgroup here; the message says why."""


def _own_v1_memory_path() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path
    return "/"


def v1_parent() -> Path:
    """Where this process's v1 memory cgroups go: under its own cgroup, else the mount's root."""
    mount = ROOT / "memory"
    own = mount / _own_v1_memory_path().lstrip("/")
    return own if own.is_dir() else mount


def _v2_parent() -> Path:
    parent = ROOT / "celery-chaos"
    parent.mkdir(exist_ok=True)
    for level in (ROOT, parent):
        controls = level / "cgroup.subtree_control"
        if "memory" not in controls.read_text().split():
            controls.write_text("+memory")
    return parent


@dataclass
class MemoryCgroup:
    path: Path
    version: int

    @classmethod
    def create(cls, name: str, record: Callable[[Path], None] | None = None) -> MemoryCgroup:
        """Make a fresh child cgroup ``name`` (v2 preferred, v1 otherwise) or say why not.
        ``record`` learns its path before it exists, so a signal in between leaves none unknown."""
        try:
            if (ROOT / "cgroup.controllers").exists():
                if "memory" not in (ROOT / "cgroup.controllers").read_text().split():
                    raise CgroupUnavailable("cgroup v2 without the memory controller")
                path, version = _v2_parent() / name, 2
            elif (ROOT / "memory" / "memory.limit_in_bytes").exists():
                path, version = v1_parent() / name, 1
            else:
                raise CgroupUnavailable(
                    "no cgroup v2 memory controller and no cgroup v1 memory mount"
                )
            if record is not None:
                record(path)
            path.mkdir(exist_ok=True)
        except OSError as error:
            raise CgroupUnavailable(f"cannot create a memory cgroup: {error}") from None
        cgroup = cls(path, version)
        cgroup.set_limit(UNLIMITED)
        return cgroup

    def wrap(self, cmd: list[str]) -> list[str]:
        """``cmd`` prefixed so the process joins this cgroup before it execs."""
        script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        return ["/bin/sh", "-c", script, str(self.path), *cmd]

    def _write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    def set_limit(self, limit: int) -> None:
        """Hard memory limit in bytes (``UNLIMITED`` lifts it)."""
        if self.version == 2:
            self._write("memory.max", "max" if limit == UNLIMITED else str(limit))
        else:
            self._write("memory.limit_in_bytes", str(limit))

    def usage(self) -> int:
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int((self.path / name).read_text())

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this cgroup."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self) -> None:
        """Remove the cgroup once the kernel has torn its killed processes down (the worker's
        pool children may still be exiting when the worker itself is reaped)."""
        remove_cgroup(str(self.path))


def remove_cgroup(path: str, seconds: float = 10.0) -> bool:
    """rmdir ``path``, retrying while it is busy (its last tasks still exiting) for up to
    ``seconds``; False when it was already gone or stayed busy."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return False
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
