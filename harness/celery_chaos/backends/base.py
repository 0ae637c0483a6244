"""What every backend provides: a broker, a ledger, workers, and the fault primitives.

The nemesis speaks only this interface, so one scenario file runs on every backend; a backend
that cannot carry out a fault raises :class:`Unsupported` before anything is started, and the
scenario is reported as not runnable with that reason instead of passing silently.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from celery_chaos.agent import instrument as agent
from celery_chaos.backends.redis_broker import inspect
from celery_chaos.core import history as h
from celery_chaos.core.broker_state import BrokerState
from celery_chaos.core.scenario import Scenario, parse_size
from celery_chaos.ledger import Ledger

WORKER_READY_DEADLINE = 60.0
BOOTSTRAP_APP = "celery_chaos.agent.bootstrap"
APP_ENV = "CHAOS_APP"  # the app the bootstrap loads (celery_chaos.agent.bootstrap.APP_ENV)


def worker_app(app: str) -> tuple[str, dict[str, str]]:
    """The ``-A`` argument and the extra environment that run ``app`` with the agent loaded:
    always through the bootstrap, so an app that never calls ``install(app)`` (a Django
    project's ``proj.celery:app``) is instrumented too; ``install`` is idempotent, so an app
    that does call it is not instrumented twice."""
    if app == BOOTSTRAP_APP:  # already the bootstrap (its CHAOS_APP is in workers.env)
        return app, {}
    return BOOTSTRAP_APP, {APP_ENV: app}


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
class WorkerExit:
    """A worker main process that exited: how, and the last lines of its log that explain it."""

    worker: str
    pid: int
    exitcode: int | None
    signal: int | None
    log_tail: list[str]


@dataclass
class Worker:
    """One Celery worker node as the harness knows it."""

    index: int
    name: str  # Celery nodename, as the agent reports it in attempt_start.worker
    handle: Any  # backend-specific (a Popen, a container, ...)
    cgroup: Any = None


class Backend(ABC):
    """Provisions broker + ledger + workers for one scenario and tears them all down."""

    name: str = "?"
    supported_faults: frozenset[str] = frozenset()
    oom_poll_interval: float = 0.01  # how often oom() reads the kill count (an API call on docker)

    def __init__(self, scenario: Scenario, run_dir: Path, log: Callable[[str], None] = print):
        self.scenario = scenario
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.workers: list[Worker] = []
        self.ledger: Ledger | None = None
        self.app = scenario.workers.app
        self.run_id = uuid.uuid4().hex[:10]
        self._next_index = 0

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
    def _spawn_worker(self) -> Worker:
        """Launch one more worker (not waiting for it), add it to ``self.workers`` and record
        ``worker_started``: the same steps on every backend, only the launch differs."""
        assert self.ledger is not None
        index = self._next_index
        self._next_index += 1
        name = f"w{index}@chaos-{self.run_id}"
        spec = self.scenario.workers
        arguments = worker_arguments(worker_app(self.app)[0], name, spec.pool, spec.concurrency)
        worker = self._launch_worker(index, name, arguments)
        self.workers.append(worker)
        self.ledger.record(h.WORKER_STARTED, worker=name, **self._worker_location(worker))
        return worker

    @abstractmethod
    def _launch_worker(self, index: int, name: str, arguments: list[str]) -> Worker:
        """Start ``celery`` with ``arguments`` (see :func:`worker_arguments`) as worker ``name``,
        not waiting for it to be ready."""

    @abstractmethod
    def _worker_location(self, worker: Worker) -> dict[str, Any]:
        """Where the worker runs, for its ``worker_started`` event (a pid, a container name)."""

    def agent_env(self, ledger_url: str, broker_url: str) -> dict[str, str]:
        """The scenario's ``workers.env`` plus what the in-worker agent reads: where the ledger
        and broker are (as the worker reaches them), the app for the bootstrap (see
        :func:`worker_app`) and the scenario's Celery settings."""
        return (
            dict(self.scenario.workers.env)
            | worker_app(self.app)[1]
            | {
                agent.LEDGER_URL_ENV: ledger_url,
                agent.BROKER_URL_ENV: broker_url,
                agent.CELERY_CONFIG_ENV: json.dumps(self.scenario.celery),
                "PYTHONUNBUFFERED": "1",
            }
        )

    def launch_worker(self) -> Worker:
        """Start one more worker and return at once (its ``worker_ready`` comes later)."""
        return self._spawn_worker()

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

    def oom(self, worker: Worker, headroom: int, wait: float, release: Callable[[], None]) -> str:
        """Lower the worker's memory limit to usage + ``headroom``, ``release`` the task, wait
        (up to ``wait`` s) for the kernel to OOM-kill it, lift the limit. Returns a detail line.

        One procedure for every backend; each supplies the primitives (usage, limit, kill count).
        """
        before = self.oom_kills(worker)
        limit = self.memory_usage(worker) + headroom
        self.set_memory_limit(worker, limit)
        try:
            release()
            deadline = time.monotonic() + wait
            while self.oom_kills(worker) == before and time.monotonic() < deadline:
                time.sleep(self.oom_poll_interval)
            after = self.oom_kills(worker)
        finally:
            configured = self.scenario.workers.memory_limit
            self.set_memory_limit(worker, parse_size(configured) if configured else None)
        if after == before:
            return f"no OOM kill within {wait}s (limit {limit} bytes); limit lifted"
        witness = self.oom_witness(worker)
        return f"{witness} (limit {limit} bytes, OOM kills {before}->{after}); limit lifted"

    def memory_usage(self, worker: Worker) -> int:
        """Bytes of memory the worker (all its processes) uses now."""
        raise Unsupported(f"oom is not supported by the {self.name} backend")

    def set_memory_limit(self, worker: Worker, limit: int | None) -> None:
        """Set the worker's memory (and swap) limit; ``None``: no limit."""
        raise Unsupported(f"oom is not supported by the {self.name} backend")

    def oom_witness(self, worker: Worker) -> str:
        """Who reported the OOM kill, for the fault's detail line."""
        return f"OOM kill in {worker.name}"

    def partition(self, worker: Worker, connected: bool, duration: float | None = None) -> str:
        """Cut (or, ``connected``, restore) the worker's broker connection; ``duration``: heal
        by itself after that many seconds."""
        raise Unsupported(f"partition is not supported by the {self.name} backend")

    def network_faults_ready(self) -> bool:
        """Whether network faults can hit the workers as they run now (local: only behind the
        proxy, which a scenario's or a marker's declared network faults set up)."""
        return True

    def drop_connections(self, worker: Worker) -> str:
        """Reset every open broker connection of ``worker`` once."""
        raise Unsupported(f"drop_connections is not supported by the {self.name} backend")

    def add_latency(self, worker: Worker, seconds: float, duration: float | None) -> str:
        """Delay the worker's broker traffic by ``seconds`` (for ``duration`` s, else for good)."""
        raise Unsupported(f"latency is not supported by the {self.name} backend")

    @abstractmethod
    def process_alive(self, worker: Worker | None, pid: int) -> bool:
        """Whether ``pid`` (as the agent saw it, inside ``worker``) is still running."""

    def oom_kills(self, worker: Worker | None) -> int:
        """How many OOM kills the kernel has made in ``worker`` so far (0 if unknown)."""
        return 0

    def pool_exit_reason(self, worker: Worker | None, pid: int) -> str | None:
        """How pool process ``pid`` of a still running ``worker`` ended, as a code of
        ``core.exit_reasons`` (``signal:N``/``exit:N``), where the backend can tell."""
        return None

    def reap_worker_exits(self) -> list[WorkerExit]:
        """Worker main processes that exited since the last call, each reported once."""
        return []

    def worker_exit_reason(self, worker: Worker | None) -> str | None:
        """How the worker died, if it did: a code of ``core.exit_reasons`` (``signal:9``,
        ``exit:1``, ``oom_kill``) where the backend can tell; other text is kept as the detail of
        a ``worker_lost`` reason."""
        return None

    @abstractmethod
    def freeze(self) -> None:
        """Stop all workers from doing anything more, so the final broker snapshot is stable."""
