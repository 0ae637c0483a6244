"""The per-run state file: what one local-placement run started, so its leftovers can be found.

A run that is SIGKILLed runs no cleanup code. Its state file names everything it started
(process-group leaders with their start times, cgroups, the watchdog) and the harness process
itself, so the watchdog or a later ``celery-chaos cleanup`` can remove exactly those, and only
once the harness is gone. A process is recognised by pid *and* start time, never by name: a pid
the kernel has handed to someone else since is left alone.

Where: ``$CELERY_CHAOS_STATE_DIR`` if set, else ``$XDG_RUNTIME_DIR/celery-chaos/``, else
``<tmp>/celery-chaos-<uid>/``; one ``<run id>.json`` per live run, removed when the run closes. A
copy is kept in the run's report folder (``local-state.json``) as the record.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from celery_chaos.placements.local.processes import stat_fields

STATE_DIR_ENV = "CELERY_CHAOS_STATE_DIR"
REPORT_COPY = "local-state.json"


def state_dir() -> Path:
    """Where live runs keep their state files (see the module docstring)."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
        return Path(runtime) / "celery-chaos"
    return Path(tempfile.gettempdir()) / f"celery-chaos-{os.getuid()}"


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def start_time(pid: int) -> float:
    """When process ``pid`` started, for telling it from a later process with the same pid:
    seconds since boot, from ``/proc/<pid>/stat`` (Linux). Not psutil's ``create_time()``, which
    adds ``/proc/stat``'s ``btime``: a whole number of seconds the kernel recomputes from the wall
    clock, so a clock step or a slew across a second moves every process's create time by a
    second. Measured in a CI run: the watchdogs of every live run took their harnesses for dead at
    the same moment (three times in 70 s) and killed their workers. Elsewhere (no ``/proc``):
    ``create_time()``. Raises ``psutil.NoSuchProcess`` when the process is gone."""
    try:
        fields = stat_fields(pid)
    except FileNotFoundError:
        raise psutil.NoSuchProcess(pid) from None
    except OSError:
        return psutil.Process(pid).create_time()
    return int(fields[19]) / _CLOCK_TICKS  # field 22: starttime, in clock ticks since boot


@dataclass(frozen=True)
class Identity:
    """One process as the kernel knows it: a pid alone can be reused, pid + start time cannot
    (:func:`start_time`)."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> Identity | None:
        try:
            return cls(pid, start_time(pid))
        except psutil.Error:
            return None

    def matches(self, process: psutil.Process) -> bool:
        try:
            return process.pid == self.pid and abs(start_time(process.pid) - self.started) < 0.01
        except psutil.Error:
            return False

    def process(self) -> psutil.Process | None:
        """The live (non-zombie) process with this identity, or None."""
        try:
            process = psutil.Process(self.pid)
            if self.matches(process) and process.status() != psutil.STATUS_ZOMBIE:
                return process
        except psutil.Error:
            pass
        return None

    def alive(self) -> bool:
        return self.process() is not None


@dataclass
class Group:
    """A process group we started; its id is its leader's pid."""

    role: str  # "ledger", "broker", "worker w0", ...
    leader: Identity


@dataclass
class RunState:
    run_id: str
    harness: Identity
    report_dir: str
    groups: list[Group] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    watchdog: Identity | None = None
    # Folders outside the report the run created (a PostgreSQL cluster in a private temp folder).
    folders: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return state_dir() / f"{self.run_id}.json"

    @classmethod
    def new(cls, run_id: str, report_dir: Path) -> RunState:
        harness = Identity.of(os.getpid())
        assert harness is not None
        return cls(run_id, harness, str(report_dir))

    def add_group(self, role: str, pid: int) -> None:
        leader = Identity.of(pid)
        if leader is not None:  # None: it is already gone, nothing to remember
            self.groups.append(Group(role, leader))
            self.save()

    def add_folder(self, path: Path) -> None:
        self.folders.append(str(path))
        self.save()

    def add_cgroup(self, path: Path) -> None:
        self.cgroups.append(str(path))
        self.save()

    def save(self) -> None:
        """Write the state file atomically (a reader never sees half of it) and the copy."""
        text = json.dumps(asdict(self), indent=1)
        for target in (self.path, Path(self.report_dir) / REPORT_COPY):
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.{os.getpid()}")
            temporary.write_text(text)
            os.replace(temporary, target)

    def discard(self) -> None:
        """The run closed cleanly: nothing of it is left to find."""
        self.path.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> RunState:
        raw = json.loads(path.read_text())
        watchdog = raw.get("watchdog")
        return cls(
            run_id=raw["run_id"],
            harness=Identity(**raw["harness"]),
            report_dir=raw["report_dir"],
            groups=[Group(g["role"], Identity(**g["leader"])) for g in raw["groups"]],
            cgroups=list(raw["cgroups"]),
            watchdog=Identity(**watchdog) if watchdog else None,
            folders=list(raw.get("folders", [])),
        )


def recorded_runs() -> list[tuple[Path, RunState | None]]:
    """Every state file in :func:`state_dir` (None where the file cannot be read)."""
    found: list[tuple[Path, RunState | None]] = []
    for path in sorted(state_dir().glob("*.json")):
        try:
            found.append((path, RunState.load(path)))
        except (OSError, ValueError, KeyError, TypeError):
            found.append((path, None))
    return found
