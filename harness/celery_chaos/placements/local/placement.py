"""The embedded default: Redis servers and Celery workers as local processes.

Each worker is a real ``celery worker`` in its own process group (so SIGKILL of the worker takes
its pool children with it), optionally inside its own memory cgroup (for real OOM kills).

Nothing outlives the harness: every process started gets ``PR_SET_PDEATHSIG``, the run's state
file (``state.py``) records each process group and cgroup the moment it exists, and a watchdog
process (``watchdog.py``) removes them all if the harness dies without closing the run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil

from celery_chaos.core import exit_reasons
from celery_chaos.core.scenario import Scenario
from celery_chaos.faults.base import LOCAL
from celery_chaos.faults.params import parse_size
from celery_chaos.faults.registry import FAULTS, proxied, supported_by
from celery_chaos.ledger import Ledger
from celery_chaos.placements.base import (
    BackendError,
    MissingExtra,
    Placement,
    Unsupported,
    Worker,
    WorkerExit,
)
from celery_chaos.placements.local import processes, reaper, watchdog
from celery_chaos.placements.local.app_services import LocalServices
from celery_chaos.placements.local.cgroups import UNLIMITED, CgroupUnavailable, MemoryCgroup
from celery_chaos.placements.local.rabbitmq_shared import SharedRabbitMQ
from celery_chaos.placements.local.redis_server import RedisServer
from celery_chaos.placements.local.servers import BrokerServer, broker_server
from celery_chaos.placements.local.state import RunState
from celery_chaos.placements.proxy import Proxy, ProxyHub
from celery_chaos.placements.service_access import CommandResult
from celery_chaos.placements.worker_command import entrypoint_command

SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGQUIT": signal.SIGQUIT, "SIGKILL": signal.SIGKILL}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported here (an import hook that refuses it counts as not)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class LocalPlacement(Placement):
    name = "local"
    # Network faults go through the harness's own TCP proxy (proxy.py), one per worker.
    supported_faults = supported_by(LOCAL)

    def __init__(
        self,
        scenario: Scenario,
        run_dir: Path,
        log: Callable[[str], None] = print,
        app: str | None = None,
        cwd: Path | None = None,
        python: str | None = None,
        agent_path: str | None = None,
        shared_rabbitmq: SharedRabbitMQ | None = None,
    ):
        super().__init__(scenario, run_dir, log)
        self.app = app or scenario.workers.app
        self.cwd = cwd or Path.cwd()
        # The interpreter the workers run with: another environment's (``celery-chaos matrix``
        # installs a Celery version and the agent there); the harness keeps its own.
        self.python = python or sys.executable
        self.agent_path = agent_path  # where that interpreter finds celery_chaos (PYTHONPATH)
        self.ledger_server = RedisServer("ledger", self.logs_dir, persistence="none")
        # a vhost of the suite's RabbitMQ node where nothing reaches beyond it (rabbitmq_shared)
        self.broker_server: BrokerServer = broker_server(
            scenario, self.logs_dir, self.run_id, shared_rabbitmq
        )
        self.needs_cgroup = bool(scenario.workers.memory_limit) or any(
            FAULTS[f.kind].memory_cgroup for f in scenario.faults
        )
        self._reaped: set[str] = set()  # workers whose exit was already reported
        self.state = RunState.new(self.run_id, run_dir)
        self.app_services = LocalServices(run_dir, self.logs_dir, self.state)
        self.watchdog: subprocess.Popen | None = None
        self.worker_tmp: Path | None = None  # the workers' TMPDIR, this run's own
        self.worker_argv: dict[str, list[str]] = {}  # worker name -> the command it runs
        self.proxy_hub: ProxyHub | None = None
        self.proxies: dict[int, Proxy] = {}  # worker index -> its own proxy to the broker
        for server in (self.ledger_server, self.broker_server):
            server.on_spawn = self._recorder(server.name)  # node and epmd alike on RabbitMQ

    def _check_extras(self) -> None:
        pool = self.scenario.workers.pool
        if pool in ("gevent", "eventlet") and not _installed(pool):
            raise MissingExtra(
                f"workers.pool {pool}: not installed (pip install 'celery-chaos[{pool}]')"
            )

    def check_runnable(self) -> None:
        super().check_runnable()
        missing = self.broker_server.missing()
        if missing:
            raise Unsupported(f"broker.kind {self.scenario.broker.kind}: {missing}")
        if self.scenario.broker.topology != "single" and self.needs_proxy:
            raise Unsupported(  # workers follow the Sentinels to whichever node is master
                "broker.topology sentinel: network faults need one broker address to proxy"
            )
        if self.needs_cgroup:
            try:
                MemoryCgroup.create(f"celery-chaos-probe-{self.run_id}").remove()
            except CgroupUnavailable as error:
                raise Unsupported(
                    f"oom/memory_limit needs a writable memory cgroup: {error}"
                ) from None

    # --- lifecycle -------------------------------------------------------------------
    def _recorder(self, role: str) -> Callable[[subprocess.Popen], None]:
        return lambda process: self.state.add_group(role, process.pid)

    def _private_tmp(self) -> Path:
        """The workers' ``TMPDIR``: a folder of this run in the same temporary directory. A
        SIGKILLed ``celery worker`` leaves its multiprocessing folder (``pymp-*``) behind; here it
        goes with the run, or with the watchdog or ``cleanup`` if the harness dies first."""
        folder = Path(tempfile.mkdtemp(prefix=f"celery-chaos-{self.run_id}-tmp-"))
        self.state.add_folder(folder)
        return folder

    def start(self) -> None:
        self.watchdog = watchdog.start(self.state, self.logs_dir / "watchdog.log")
        self.worker_tmp = self._private_tmp()
        try:
            self.ledger_server.start()
            self.broker_server.start()
        except processes.ServerUnavailable as error:
            raise BackendError(str(error)) from None
        self.broker = self.broker_server.broker(self.scenario.broker, self.log)
        self.broker.declare_queues()
        self.ledger = Ledger(self.ledger_server.client())
        self.service_urls = self.app_services.start(self.wanted_services(), self.log)
        self._run_setup()
        names = [self._spawn_worker().name for _ in range(self.scenario.workers.count)]
        if names:
            self.wait_ready(names)
        self.broker.settle()

    def close(self) -> None:
        for worker in self.workers:
            processes.stop(worker.handle, sig=signal.SIGKILL, grace=5)
        # every recorded cgroup, with whatever is in it: a signal may have caught a worker
        # between its cgroup and its place in self.workers
        reaper.empty_cgroups(self.state.cgroups)
        self.broker_server.discard()
        self.ledger_server.stop()
        self.app_services.close()
        self._close_proxies()
        if self.worker_tmp is not None:
            shutil.rmtree(self.worker_tmp, ignore_errors=True)
        busy = [path for path in self.state.cgroups if Path(path).exists()]
        if busy:  # still busy after the retries: the watchdog removes it once the harness exits
            self.log(f"   cgroup(s) still busy, left to the run's watchdog: {', '.join(busy)}")
            return
        self.state.discard()
        if self.watchdog is not None:
            processes.stop(self.watchdog, grace=2)
            self.watchdog = None

    # --- workers ---------------------------------------------------------------------
    def _worker_env(self, broker_url: str | None = None) -> dict[str, str]:
        broker_url = broker_url or self.broker.worker_url
        env = dict(os.environ) | self.agent_env(self.ledger_server.url, broker_url)
        paths = [str(self.cwd), self.agent_path, env.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        if self.worker_tmp is not None:
            env["TMPDIR"] = str(self.worker_tmp)
        return env

    def run_setup_command(self, command: str, timeout: float) -> CommandResult:
        return self.app_services.run_command(command, self._worker_env(), self.work_dir, timeout)

    def _launch_worker(self, index: int, name: str, arguments: list[str]) -> Worker:
        spec = self.scenario.workers
        cmd = entrypoint_command([self.python, "-m", "celery", *arguments], spec.entrypoint)
        self.worker_argv[name] = list(cmd)  # as /proc shows it (a cgroup wrapper execs it)
        cgroup = None
        if self.needs_cgroup:
            cgroup_name = f"celery-chaos-{self.run_id}-w{index}"
            cgroup = MemoryCgroup.create(cgroup_name, record=self.state.add_cgroup)
            if spec.memory_limit:
                cgroup.set_limit(parse_size(spec.memory_limit))
            cmd = cgroup.wrap(cmd)
        process = processes.spawn(
            cmd,
            self.logs_dir / f"worker-w{index}.log",
            env=self._worker_env(self._proxied_broker_url(index)),
            cwd=self.work_dir,  # the launching cwd stays first on PYTHONPATH
        )
        self.state.add_group(f"worker w{index}", process.pid)
        return Worker(index=index, name=name, handle=process, cgroup=cgroup)

    def _worker_location(self, worker: Worker) -> dict[str, object]:
        return {"pid": worker.handle.pid, "argv": self.worker_argv.get(worker.name)}

    def worker_log(self, worker: Worker) -> list[str]:
        log = self.logs_dir / f"worker-w{worker.index}.log"
        try:
            return log.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def _log_tail(self, worker: Worker) -> list[str]:
        """The last lines of the worker's own log that explain how it ended."""
        return exit_reasons.explaining_tail(self.worker_log(worker))

    def check_workers_alive(self, names: set[str]) -> None:
        """Called on every readiness poll: a worker that could not start (import error, bad
        settings) is reported at once, with its own error, not after the readiness timeout."""
        for worker in self.workers:
            if worker.name in names and worker.handle.poll() is not None:
                log = self.logs_dir / f"worker-w{worker.index}.log"
                tail = self._log_tail(worker) or ["(no output)"]
                code = exit_reasons.by_returncode(worker.handle.returncode)
                raise BackendError(
                    f"worker {worker.name} exited during startup ({code}): {tail[-1]} (log: {log})"
                )

    def reap_worker_exits(self, force: bool = False) -> list[WorkerExit]:
        exits = []  # a poll per worker: always current, so ``force`` changes nothing here
        for worker in self.workers:
            code = worker.handle.poll()
            if code is None or worker.name in self._reaped:
                continue
            self._reaped.add(worker.name)
            exits.append(
                WorkerExit(
                    worker=worker.name,
                    pid=worker.handle.pid,
                    exitcode=code if code >= 0 else None,
                    signal=-code if code < 0 else None,
                    log_tail=self._log_tail(worker),
                )
            )
        return exits

    # --- faults ----------------------------------------------------------------------
    def _own(self, worker: Worker, pid: int) -> bool:
        """Only ever signal a process that belongs to a worker group we started."""
        try:
            return os.getpgid(pid) == worker.handle.pid
        except ProcessLookupError:
            return False

    def kill_pool_process(self, worker: Worker, pid: int) -> str:
        if not self._own(worker, pid):
            return f"pid {pid} is not running in {worker.name}; nothing killed"
        os.kill(pid, signal.SIGKILL)
        return f"SIGKILL pid {pid} (pool process of {worker.name})"

    def kill_worker(self, worker: Worker) -> str:
        members = processes.group_members(worker.handle)
        processes.signal_group(worker.handle, signal.SIGKILL)
        worker.handle.wait(timeout=10)
        return (
            f"SIGKILL process group {worker.handle.pid} of {worker.name} ({len(members)} processes)"
        )

    def signal_worker(self, worker: Worker, signame: str) -> str:
        if worker.handle.poll() is not None:
            return f"{worker.name} already exited"
        os.kill(worker.handle.pid, SIGNALS[signame])
        return f"{signame} to {worker.name} main process {worker.handle.pid}"

    def pause_worker(self, worker: Worker, paused: bool) -> str:
        sig = signal.SIGSTOP if paused else signal.SIGCONT
        processes.signal_group(worker.handle, sig)
        return f"{signal.Signals(sig).name} to process group of {worker.name}"

    def _crash_and_restart_broker(self, down_for: float) -> str:
        self.broker_server.restart(signal.SIGKILL, down_for=down_for)
        return self.broker_server.restart_detail()

    def close_broker_connection(self, worker: Worker) -> str:
        """Find the worker's connections by its sockets' ports, as RabbitMQ sees them (peer
        port), and have the node close them, as it does on a policy or an operator's command."""
        broker, port = self._closing_broker(), self.broker_server.port
        ports = set()
        for pid in processes.group_members(worker.handle):
            try:
                sockets = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            ports |= {c.laddr.port for c in sockets if c.raddr and c.raddr.port == port}
        peers = {str(p) for p in ports}
        pids = broker.close_connections("peer_port", peers, "celery-chaos close_connection fault")
        return f"RabbitMQ closed {len(pids)} connection(s) of {worker.name} (ports {sorted(ports)})"

    def memory_usage(self, worker: Worker) -> int:
        return worker.cgroup.usage()

    def set_memory_limit(self, worker: Worker, limit: int | None) -> None:
        worker.cgroup.set_limit(UNLIMITED if limit is None else limit)

    def oom_witness(self, worker: Worker) -> str:
        return f"kernel OOM killer fired in cgroup v{worker.cgroup.version} of {worker.name}"

    def process_alive(self, worker: Worker | None, pid: int) -> bool:
        return processes.pid_alive(pid)

    def worker_exit_reason(self, worker: Worker | None) -> str | None:
        """A code of the exit-reason vocabulary (``signal:N``/``exit:N``), once it exited."""
        if worker is None or worker.handle.poll() is None:
            return None
        return exit_reasons.by_returncode(worker.handle.returncode)

    def pool_exit_reason(self, worker: Worker | None, pid: int) -> str | None:
        """From the zombie's wait status while the worker has not reaped it, else from the line
        billiard logs when it does (``Process ... pid:N exited with 'signal 11 (SIGSEGV)'``)."""
        if worker is None:
            return None
        zombie = processes.zombie_status(pid)
        if zombie is not None and zombie[0] == worker.handle.pid:
            return exit_reasons.by_returncode(os.waitstatus_to_exitcode(zombie[1]))
        log = self.logs_dir / f"worker-w{worker.index}.log"
        try:
            found = re.findall(rf"pid:{pid} exited with '(signal|exitcode) (\d+)", log.read_text())
        except OSError:
            return None
        if not found:
            return None
        kind, number = found[-1]
        return exit_reasons.by_returncode(-int(number) if kind == "signal" else int(number))

    def oom_kills(self, worker: Worker | None) -> int:
        return worker.cgroup.oom_kills() if worker is not None and worker.cgroup else 0

    def freeze(self) -> None:
        for worker in self.workers:
            if worker.handle.poll() is None:
                processes.signal_group(worker.handle, signal.SIGSTOP)

    # --- network faults through the proxy ---------------------------------------------
    @property
    def needs_proxy(self) -> bool:
        """Workers go through a proxy only when a fault (or the storm) needs one: a scenario
        without network faults reaches the broker exactly as before."""
        kinds = {f.kind for f in self.scenario.faults}
        storm = getattr(self.scenario, "storm", None)
        if storm is not None:
            kinds |= set(storm.kinds())
        return proxied(kinds, LOCAL)

    def network_faults_ready(self) -> bool:
        return self.needs_proxy

    def network_holds_data(self) -> bool:
        return self.proxy_hub is not None and self.proxy_hub.holds_data()

    def _proxied_broker_url(self, index: int) -> str | None:
        """The broker URL worker ``index`` gets: its own proxy's port (None: direct)."""
        if not self.needs_proxy:
            return None
        if self.proxy_hub is None:
            self.proxy_hub = ProxyHub()
        port = self.broker_server.port
        proxy = self.proxy_hub.open(f"w{index}", ("127.0.0.1", port))
        self.proxies[index] = proxy
        return self.broker.worker_url.replace(f":{port}/", f":{proxy.port}/")

    def _proxy(self, worker: Worker) -> Proxy:
        proxy = self.proxies.get(worker.index)
        if proxy is None:
            raise Unsupported(f"{worker.name} reaches the broker directly (no proxy)")
        return proxy

    def partition(self, worker: Worker, connected: bool, duration: float | None = None) -> str:
        proxy = self._proxy(worker)
        return proxy.heal() if connected else proxy.partition(duration)

    def hold_one_way(self, worker: Worker, direction: str, duration: float | None) -> str:
        return self._proxy(worker).partition(duration, direction)

    def failover(self, how: str) -> str:
        failover = getattr(self.broker_server, "failover", None)
        if failover is None:  # the scenario schema refuses it first: a single server
            raise Unsupported("failover: needs broker.topology sentinel")
        return failover(how)

    def drop_connections(self, worker: Worker) -> str:
        return self._proxy(worker).drop_connections()

    def add_latency(self, worker: Worker, seconds: float, duration: float | None) -> str:
        return self._proxy(worker).add_latency(seconds, duration)

    def limit_bandwidth(self, worker: Worker, rate: int, duration: float | None) -> str:
        return self._proxy(worker).limit_bandwidth(rate, duration)

    def _close_proxies(self) -> None:
        if self.proxy_hub is not None:
            self.proxy_hub.close()
            self.proxy_hub = None
