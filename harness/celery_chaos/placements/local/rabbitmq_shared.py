"""One local RabbitMQ node shared by the scenarios of a suite, each in a virtual host of its own.

Booting a node costs about 4 s of CPU (Erlang loads and JIT-compiles every module of RabbitMQ);
a vhost costs milliseconds. A vhost is RabbitMQ's unit of isolation: its own queues, exchanges,
bindings, policies, permissions and message stores, and its clients' connections are listed and
closed per vhost. So a scenario leases a vhost (:class:`VhostServer`, the local placement's
broker server) on a running node, the final inspection closes only that vhost's connections,
and deleting the vhost at the end deletes everything the scenario declared.

What a vhost cannot isolate is the node itself: a scenario that crashes or restarts the broker,
sets a node-wide option or storms gets a node of its own as before
(:func:`celery_chaos.placements.sharing.can_share`).

Nothing outlives the suite: the shared node is recorded in a state file of its own with a
watchdog (``state.py``, ``watchdog.py``), exactly like a run, and :meth:`SharedRabbitMQ.close`
stops it; ``celery-chaos cleanup`` finds it if both the harness and its watchdog were killed.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import amqp

from celery_chaos.brokers.rabbitmq import RabbitMQBroker, connect
from celery_chaos.brokers.rabbitmq_vhosts import add_vhost, delete_vhost
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.local import processes, watchdog
from celery_chaos.placements.local.rabbitmq_server import RabbitMQServer
from celery_chaos.placements.local.state import RunState


class SharedRabbitMQ:
    """The suite's node: started at the first :meth:`lease`, stopped by :meth:`close`."""

    def __init__(self, workdir: Path | None = None):
        self.workdir = workdir  # None: a private temporary folder, made at the first lease
        self.node: RabbitMQServer | None = None
        self.state: RunState | None = None
        self.watchdog: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> SharedRabbitMQ:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def lease(self, run_id: str, logs_dir: Path) -> VhostServer:
        """A vhost for run ``run_id`` (created when the placement starts its broker)."""
        return VhostServer(self, f"chaos-{run_id}", logs_dir)

    def running_node(self) -> RabbitMQServer:
        """The node, started (with its state file and watchdog) if it is not running."""
        with self._lock:
            process = self.node.process if self.node is not None else None
            if process is None or process.poll() is not None:
                self._start()
            assert self.node is not None
            return self.node

    def _start(self) -> None:
        if self.node is not None:  # it died: a new node, the old one's processes stopped
            self.node.remove(keep_logs=True)
        if self.state is None:
            self._record()
        assert self.state is not None and self.workdir is not None
        state = self.state
        self.node = RabbitMQServer(f"node-{secrets.token_hex(2)}", self.workdir)
        self.node.on_spawn = lambda process: state.add_group("shared rabbitmq", process.pid)
        self.node.start()

    def _record(self) -> None:
        """The node's folder, state file and watchdog, before any process starts."""
        run_id = f"shared-rabbitmq-{secrets.token_hex(4)}"
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"celery-chaos-{run_id}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state = RunState.new(run_id, self.workdir)
        self.state.folders.append(str(self.workdir))
        self.watchdog = watchdog.start(self.state, self.workdir / "watchdog.log")

    def close(self) -> None:
        """Stop the node and its watchdog; its folder goes (each scenario kept its log lines)."""
        with self._lock:
            if self.node is not None:
                self.node.remove()
                self.node = None
            if self.state is not None:
                self.state.discard()
            if self.watchdog is not None:
                processes.stop(self.watchdog, grace=2)
                self.watchdog = None
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)


class VhostServer:
    """One scenario's broker on the shared node: what the local placement and the inspection
    use (:class:`~.servers.BrokerServer`, :class:`~celery_chaos.brokers.rabbitmq_inspection.
    RabbitMQAccess`), with every client on its own vhost."""

    name = "broker"

    def __init__(self, shared: SharedRabbitMQ, vhost: str, logs_dir: Path):
        self.shared = shared
        self.vhost = vhost
        self.logs_dir = logs_dir
        self.on_spawn: Callable[[subprocess.Popen], None] | None = None  # spawns nothing
        self.node: RabbitMQServer | None = None
        self._log_offset = 0  # where the node's log stood when this vhost was added

    @property
    def port(self) -> int:
        return self.node.port if self.node is not None else 0

    @property
    def url(self) -> str:
        node = self.node
        assert node is not None
        return f"amqp://{node.user}:{node.password}@127.0.0.1:{node.port}/{self.vhost}"

    def missing(self) -> str | None:
        return RabbitMQServer.missing()

    def start(self) -> None:
        self.node = self.shared.running_node()
        self._log_offset = _size(self.node.node_log)
        add_vhost(self.node, self.vhost, self.node.user)

    def restart(self, sig: int, down_for: float = 0.0) -> None:
        raise NotImplementedError("a shared node is never restarted (rabbitmq_shared.can_share)")

    def restart_detail(self) -> str:
        return ""

    def discard(self) -> None:
        """Delete the vhost (its queues, messages and connections go with it) and keep the
        node's log lines written meanwhile with the run's logs."""
        if self.node is None:
            return
        self._keep_log()
        try:
            delete_vhost(self.node, self.vhost)
        except RuntimeError:
            pass  # the node is gone: nothing of the vhost is left either
        self.node = None

    def _keep_log(self) -> None:
        assert self.node is not None
        source = self.node.node_log
        target = self.logs_dir / "broker" / "log" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        header = (
            f"# shared node {self.node.nodename}, this run's vhost {self.vhost}: the node's log"
            " from the moment the vhost was added (other scenarios' lines may be among them)\n"
        )
        with target.open("wb") as out:
            out.write(header.encode())
            if source.exists():
                with source.open("rb") as log:
                    log.seek(self._log_offset)
                    shutil.copyfileobj(log, out)

    def broker(self, spec: BrokerSpec, log: Callable[[str], None]) -> RabbitMQBroker:
        return RabbitMQBroker(spec, self, self.url, log=log)

    # --- access (rabbitmq_inspection.RabbitMQAccess) -------------------------------------
    def connection(self) -> amqp.Connection:
        assert self.node is not None
        node = self.node
        return connect("127.0.0.1", node.port, node.user, node.password, vhost=self.vhost)

    def ctl(self, *args: str) -> str:
        assert self.node is not None
        return self.node.ctl(*args)

    def erl(self, expression: str) -> str:
        assert self.node is not None
        return self.node.erl(expression)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
