"""What every backend provides: a broker, a ledger, workers, and the fault primitives.

The nemesis speaks only this interface, so one scenario file runs on every backend; a backend
that cannot carry out a fault raises :class:`Unsupported` before anything is started, and the
scenario is reported as not runnable with that reason instead of passing silently.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from celery_chaos.backends.redis_broker import inspect
from celery_chaos.core import history as h
from celery_chaos.core.checker import BrokerState
from celery_chaos.core.scenario import Scenario
from celery_chaos.ledger import Ledger

WORKER_READY_DEADLINE = 60.0


def worker_arguments(app: str, name: str, pool: str, concurrency: int) -> list[str]:
    """``celery worker`` arguments after the executable. Gossip, mingle and heartbeats are off:
    they add start-up time and remote-control chatter that no scenario measures."""
    return [
        "-A", app, "worker", "-n", name, "-P", pool, "-c", str(concurrency), "-l", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


class BackendError(RuntimeError):
    """The environment cannot run the scenario (no engine, broker unreachable, worker crashed)."""


class Unsupported(BackendError):
    """This backend (or this host) cannot inject a fault the scenario asks for."""


@dataclass
class Worker:
    """One Celery worker node as the harness knows it."""

    index: int
    name: str  # Celery nodename, as the agent reports it in attempt_start.worker
    handle: Any  # backend-specific (a Popen, a container, ...)
    cgroup: Any = None


@dataclass
class WorkerExit:
    worker: str
    pid: int
    exitcode: int | None
    signal: int | None
    log_tail: list[str]


class Backend(ABC):
    """Provisions broker + ledger + workers for one scenario and tears them all down."""

    name: str = "?"
    supported_faults: frozenset[str] = frozenset()

    def __init__(self, scenario: Scenario, run_dir: Path, log: Callable[[str], None] = print):
        self.scenario = scenario
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.workers: list[Worker] = []
        self.ledger: Ledger | None = None

    # --- lifecycle -------------------------------------------------------------------
    def check_runnable(self) -> None:
        """Raise :class:`Unsupported` if a fault of the scenario cannot be injected here."""
        for i, fault in enumerate(self.scenario.faults):
            if fault.kind not in self.supported_faults:
                raise Unsupported(
                    f"faults[{i}].kind: {fault.kind} is not supported by the {self.name} backend"
                )

    @abstractmethod
    def start(self) -> None:
        """Start ledger, broker and the scenario's initial workers; return when all are ready."""

    @abstractmethod
    def close(self) -> None:
        """Stop everything this backend started. Idempotent; safe after a failed start."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- access ----------------------------------------------------------------------
    @property
    @abstractmethod
    def broker_url(self) -> str:
        """A broker URL the harness process (the dispatching client) can reach."""

    @abstractmethod
    def broker_client(self) -> redis.Redis:
        """A client for the broker Redis, for inspection."""

    def broker_state(self) -> BrokerState:
        return inspect(self.broker_client())

    def worker_named(self, name: str | None) -> Worker | None:
        return next((w for w in self.workers if w.name == name), None)

    def wait_ready(
        self, names: list[str], since: int = 0, deadline: float = WORKER_READY_DEADLINE
    ) -> None:
        """Block until each named worker reported ``worker_ready`` to the ledger (looking at
        events from position ``since`` on)."""
        assert self.ledger is not None
        waiting, offset, end = set(names), since, time.monotonic() + deadline
        while waiting:
            events = self.ledger.read_from(offset)
            offset += len(events)
            waiting -= {e.get("worker") for e in events if e["type"] == h.WORKER_READY}
            if not waiting:
                return
            self.check_workers_alive(waiting)
            if time.monotonic() > end:
                raise BackendError(f"workers {sorted(waiting)} not ready after {deadline:.0f}s")
            time.sleep(0.01)

    @abstractmethod
    def check_workers_alive(self, names: set[str]) -> None:
        """Raise :class:`BackendError` if a worker we are waiting for has already exited."""

    # --- faults ----------------------------------------------------------------------
    @abstractmethod
    def _spawn_worker(self) -> Worker:
        """Launch one more worker (not waiting for it) and add it to ``self.workers``."""

    def start_worker(self) -> Worker:
        """Start one more worker and return once it is ready."""
        assert self.ledger is not None
        since = self.ledger.length()
        worker = self._spawn_worker()
        self.wait_ready([worker.name], since=since)
        return worker

    @abstractmethod
    def kill_pool_process(self, worker: Worker, pid: int) -> str:
        """SIGKILL one pool process (the one running a task). Returns a detail line."""

    @abstractmethod
    def kill_worker(self, worker: Worker) -> str:
        """SIGKILL the whole worker: main process and every child."""

    @abstractmethod
    def signal_worker(self, worker: Worker, signame: str) -> str:
        """Send SIGTERM/SIGQUIT to the worker's main process (warm / cold shutdown)."""

    @abstractmethod
    def pause_worker(self, worker: Worker, paused: bool) -> str:
        """Freeze (SIGSTOP / docker pause) or thaw the whole worker."""

    @abstractmethod
    def restart_broker(self) -> str:
        """Crash the broker and start it again with the scenario's persistence."""

    @abstractmethod
    def oom(self, worker: Worker, headroom: int, wait: float, release: Callable[[], None]) -> str:
        """Lower the worker's memory limit to usage + ``headroom``, ``release`` the task, wait
        (up to ``wait`` s) for the kernel to OOM-kill it, lift the limit. Returns a detail line."""

    def partition(self, worker: Worker, connected: bool) -> str:
        raise Unsupported(f"partition is not supported by the {self.name} backend")

    @abstractmethod
    def process_alive(self, worker: Worker | None, pid: int) -> bool:
        """Whether ``pid`` (as the agent saw it, inside ``worker``) is still running."""

    def oom_kills(self, worker: Worker | None) -> int:
        """How many OOM kills the kernel has made in ``worker`` so far (0 if unknown)."""
        return 0

    def reap_worker_exits(self) -> list[WorkerExit]:
        """Worker main processes that exited since the last call, each reported once."""
        return []

    def worker_exit_reason(self, worker: Worker | None) -> str | None:
        """How the worker died, if it did (e.g. ``OOMKilled``, ``exit code -9``)."""
        return None

    @abstractmethod
    def freeze(self) -> None:
        """Stop all workers from doing anything more, so the final broker snapshot is stable."""
