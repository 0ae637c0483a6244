"""What every placement (``--backend``: local, docker) provides: the broker's server, a ledger,
workers, and the fault primitives on them.

The nemesis speaks only this interface, so one scenario file runs on every placement; a placement
that cannot carry out a fault raises :class:`Unsupported` before anything is started, and the
scenario is reported as not runnable with that reason instead of passing silently. What the
broker itself does (inspection, the quiet check, declared queues) is its :class:`Broker`'s, so no
placement asks which broker kind it runs (docs/explanation/architecture.md: Broker x Placement).
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
from urllib.parse import quote

from celery_chaos.agent import instrument as agent
from celery_chaos.brokers import BROKERS, Broker, kinds_that_close_connections
from celery_chaos.core import history as h
from celery_chaos.core.scenario import Scenario
from celery_chaos.faults.params import parse_size
from celery_chaos.faults.registry import FAULTS
from celery_chaos.ledger import Ledger
from celery_chaos.placements.service_access import ServiceAccess
from celery_chaos.placements.worker_command import (
    launch_arguments,
    results_env,
    results_url,
    worker_app,
)

# In a Celery setting's value: the run's own folder (see Placement.worker_files_dir).
RUN_DIR_PLACEHOLDER = "{run_dir}"
WORKER_READY_DEADLINE = 60.0
# Environment variables that choose the broker behind the app's back: ``celery``'s ``--broker``
# option reads ``BROKER_URL`` and Celery's settings ``CELERY_BROKER_URL``. An app whose own
# config also reads ``BROKER_URL`` (e.g. an ``amqp://`` production host passed with
# ``--env``) would otherwise send its workers there instead of to the harness's broker.
BROKER_URL_ENVS = ("BROKER_URL", "CELERY_BROKER_URL")


class BackendError(RuntimeError):
    """The environment cannot run the scenario (no engine, broker unreachable, worker crashed)."""


class Unsupported(BackendError):
    """This placement (or this host) cannot inject a fault the scenario asks for."""


class MissingExtra(Unsupported):
    """The scenario needs an optional extra that is not installed (e.g. a gevent pool): the run
    reports it ``skipped`` with the install hint, unless ``--require-all`` (README: Exit codes)."""


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
    handle: Any  # placement-specific (a Popen, a container, ...)
    cgroup: Any = None


class Placement(ServiceAccess, ABC):
    """Runs the broker's server, the ledger, the app's services and the workers of one scenario,
    and tears them all down."""

    name: str = "?"
    supported_faults: frozenset[str] = frozenset()
    oom_poll_interval: float = 0.01  # how often oom() reads the kill count (an API call on docker)
    # The scenario's broker, once :meth:`start` started its server (see ``celery_chaos.brokers``).
    broker: Broker
    # How the agent writes: fire-and-forget where the run reads the history only after its
    # barrier (run.barrier); chaos_env sets sync, as it reads the history while workers live.
    agent_writes: str = agent.ASYNC_WRITES

    def __init__(self, scenario: Scenario, run_dir: Path, log: Callable[[str], None] = print):
        self.scenario = scenario
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.workers: list[Worker] = []
        self.ledger: Ledger | None = None
        self.app = scenario.workers.app
        self.version_env: dict[str, str] = {}  # a rolling deploy's new version (deploy_version)
        self.run_id = uuid.uuid4().hex[:10]
        self._next_index = 0
        self._init_services(run_dir)

    # --- lifecycle -------------------------------------------------------------------
    def check_runnable(self) -> None:
        """Raise :class:`Unsupported` if a fault of the scenario cannot be injected here."""
        for i, fault in enumerate(self.scenario.faults):
            if fault.kind not in self.supported_faults:
                raise Unsupported(
                    f"faults[{i}].kind: {fault.kind} is not supported by the {self.name} backend"
                )
        self._check_extras()
        closing = [
            f.kind
            for f in self.scenario.faults
            if FAULTS[f.kind].needs_broker == "closes_connections"
        ]
        if closing and not BROKERS[self.scenario.broker.kind].closes_connections:
            kinds = " or ".join(kinds_that_close_connections())
            raise Unsupported(f"{closing[0]}: needs broker.kind {kinds}")

    def _check_extras(self) -> None:
        """Raise :class:`MissingExtra` if the scenario needs an extra not installed here."""
        return None

    @abstractmethod
    def start(self) -> None:
        """Start ledger, broker and the scenario's initial workers; return when all are ready."""

    @abstractmethod
    def close(self) -> None:
        """Stop everything this placement started. Idempotent; safe after a failed start."""

    def __enter__(self) -> Placement:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- access ----------------------------------------------------------------------
    @property
    def next_index(self) -> int:
        """The index the next started worker gets (worker indexes are never reused)."""
        return self._next_index

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
        ``worker_started``: the same steps on every placement, only the launch differs."""
        assert self.ledger is not None
        index = self._next_index
        self._next_index += 1
        name = f"w{index}@chaos-{self.run_id}"
        arguments = launch_arguments(worker_app(self.app)[0], name, self.scenario.workers)
        worker = self._launch_worker(index, name, arguments)
        self.workers.append(worker)
        self.ledger.record(h.WORKER_STARTED, worker=name, **self._worker_location(worker))
        return worker

    @abstractmethod
    def _launch_worker(self, index: int, name: str, arguments: list[str]) -> Worker:
        """Start ``celery`` with ``arguments`` (see :func:`launch_arguments`) as worker ``name``,
        not waiting for it to be ready."""

    @abstractmethod
    def _worker_location(self, worker: Worker) -> dict[str, Any]:
        """Where the worker runs and how it was launched, for its ``worker_started`` event (a
        pid or a container name, and ``argv``: the exact command line)."""

    def agent_env(self, ledger_url: str, broker_url: str) -> dict[str, str]:
        """The scenario's ``workers.env`` plus what the in-worker agent reads: where the ledger
        and broker are (as the worker reaches them), the app for the bootstrap (see
        :func:`worker_app`) and the scenario's Celery settings."""
        return (
            dict(self.scenario.workers.env)
            | self.version_env
            | worker_app(self.app)[1]
            | {
                agent.LEDGER_URL_ENV: ledger_url,
                agent.BROKER_URL_ENV: broker_url,
                **dict.fromkeys(BROKER_URL_ENVS, broker_url),
                agent.CELERY_CONFIG_ENV: json.dumps(
                    self.broker.celery_settings(self.scenario.celery)
                ).replace(RUN_DIR_PLACEHOLDER, self.worker_files_dir()),
                "PYTHONUNBUFFERED": "1",
            }
            | self._results_env(ledger_url, broker_url)
            | self._writes_env()
            | self.service_env()
        )

    def _writes_env(self) -> dict[str, str]:
        """How the agent writes, and the checkpoints that may be armed (only those ask the
        ledger; a scenario arms just its faults' checkpoint triggers, chaos_env any: "*")."""
        if self.agent_writes != agent.ASYNC_WRITES:
            return {agent.WRITES_ENV: self.agent_writes, agent.ARMABLE_ENV: "*"}
        names = sorted({f.when.checkpoint for f in self.scenario.faults if f.when.checkpoint})
        return {agent.WRITES_ENV: agent.ASYNC_WRITES, agent.ARMABLE_ENV: ",".join(names)}

    def worker_files_dir(self) -> str:
        """Where ``{run_dir}`` in a Celery setting points, as the worker sees it (files a worker
        writes, e.g. ``worker_state_db``, stay with the run instead of littering the host)."""
        return str(self.run_dir.resolve())

    def _results_env(self, ledger_url: str, broker_url: str) -> dict[str, str]:
        database = getattr(self, "service_urls", {}).get("postgres")  # services.postgres
        return results_env(
            self.scenario.results,
            ledger_url,
            broker_url,
            self.worker_files_dir(),
            database.workers if database else None,
        )

    def results_url(self) -> str | None:
        """The scenario's result backend as the harness reaches it (sending a chord needs it)."""
        assert self.ledger is not None
        pool = self.ledger.client.connection_pool.connection_kwargs
        auth = f":{quote(pool['password'], safe='')}@" if pool.get("password") else ""
        ledger_url = f"redis://{auth}{pool.get('host', 'localhost')}:{pool.get('port', 6379)}/0"
        return results_url(self.scenario.results, ledger_url, self.broker.url)

    def launch_worker(self) -> Worker:
        """Start one more worker and return at once (its ``worker_ready`` comes later)."""
        return self._spawn_worker()

    def deploy_version(self, app: str | None, env: dict[str, str] | None) -> None:
        """Workers started from now on run ``app`` (if given) with ``env`` over
        ``workers.env``: a rolling deploy's new code version."""
        self.app = app or self.app
        self.version_env |= env or {}

    def worker_ready(self, worker: Worker) -> bool:
        """Whether ``worker`` reported ``worker_ready`` to the ledger (never waits)."""
        assert self.ledger is not None
        events = self.ledger.read_from(0)
        return any(e["type"] == h.WORKER_READY and e.get("worker") == worker.name for e in events)

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

    def restart_broker(self, down_for: float = 0.0) -> str:
        """Crash the broker, keep it down ``down_for`` s (a real restart is never instant: what
        a client does depends on whether the broker is back when it reconnects), start it again
        with the scenario's persistence, and declare the scenario's extra queues again."""
        detail = self._crash_and_restart_broker(down_for)
        self.broker.declare_queues()
        return detail + (f", down for {down_for:g}s" if down_for else "")

    @abstractmethod
    def _crash_and_restart_broker(self, down_for: float) -> str:
        """SIGKILL the broker, wait ``down_for`` s, start it again; returns a detail line."""

    def oom(self, worker: Worker, headroom: int, wait: float, release: Callable[[], None]) -> str:
        """Lower the worker's memory limit to usage + ``headroom``, ``release`` the task, wait
        (up to ``wait`` s) for the kernel to OOM-kill it, lift the limit. Returns a detail line.

        One procedure for every placement; each supplies the primitives (usage, limit, kill count).
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

    def close_broker_connection(self, worker: Worker) -> str:
        """Have the broker close the worker's connections (a broker that
        :attr:`~celery_chaos.brokers.base.Broker.closes_connections` only)."""
        raise Unsupported(f"close_connection is not supported by the {self.name} backend")

    def _closing_broker(self) -> Broker:
        """The broker, if it can close a client's connections (else :class:`Unsupported`)."""
        if not self.broker.closes_connections:
            raise Unsupported(f"close_connection: a {self.broker.kind} broker cannot close one")
        return self.broker

    def failover(self, how: str) -> str:
        """Fail the broker's master over to its replica (a Sentinel topology only)."""
        raise Unsupported(f"failover is not supported by the {self.name} backend")

    def hold_one_way(self, worker: Worker, direction: str, duration: float | None) -> str:
        """Hold one direction of the worker's broker connections (behind the proxy only)."""
        raise Unsupported(f"partition_one_way is not supported by the {self.name} backend")

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

    def network_holds_data(self) -> bool:
        """Whether a network fault holds bytes between a worker and the broker (a message may
        be in transit: neither in the broker nor in a worker)."""
        return False

    def limit_bandwidth(self, worker: Worker, rate: int, duration: float | None) -> str:
        """Hold the worker's broker traffic to ``rate`` bytes/s each way (for ``duration`` s,
        else for good)."""
        raise Unsupported(f"bandwidth is not supported by the {self.name} backend")

    @abstractmethod
    def process_alive(self, worker: Worker | None, pid: int) -> bool:
        """Whether ``pid`` (as the agent saw it, inside ``worker``) is still running."""

    def oom_kills(self, worker: Worker | None) -> int:
        """How many OOM kills the kernel has made in ``worker`` so far (0 if unknown)."""
        return 0

    def pool_exit_reason(self, worker: Worker | None, pid: int) -> str | None:
        """How pool process ``pid`` of a still running ``worker`` ended, as a code of
        ``core.exit_reasons`` (``signal:N``/``exit:N``), where the placement can tell."""
        return None

    def reap_worker_exits(self, force: bool = False) -> list[WorkerExit]:
        """Worker main processes that exited since the last call, each reported once.
        ``force``: look now, even where looking is rate-limited (the run's last look)."""
        return []

    def worker_log(self, worker: Worker) -> list[str]:
        """The worker's own output so far (its log file or container log); [] where unknown."""
        return []

    def worker_exit_reason(self, worker: Worker | None) -> str | None:
        """How the worker died, if it did: a code of ``core.exit_reasons`` (``signal:9``,
        ``exit:1``, ``oom_kill``) where the placement can tell; other text is kept as the detail of
        a ``worker_lost`` reason."""
        return None

    @abstractmethod
    def freeze(self) -> None:
        """Stop all workers from doing anything more, so the final broker snapshot is stable."""
