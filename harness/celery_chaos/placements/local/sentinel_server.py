"""A Redis Sentinel broker on 127.0.0.1: a master, a replica and three Sentinels, all run by the
same ``redis-server`` binary (``--sentinel``), so a ``failover`` fault has a replica to promote
and the workers find the master the way production clients do (``sentinel://``).

The data nodes share one password; the Sentinels have their own (``requirepass`` on a Sentinel:
clients give it through Kombu's ``sentinel_kwargs``, the master's comes from the URL). The
Sentinels notice a dead master after :data:`DOWN_AFTER_MS` and promote the replica; ``failover``
with ``how: sentinel`` asks them to do it at once with the master alive (``SENTINEL FAILOVER``).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from celery_chaos.brokers.sentinel import (
    DOWN_AFTER_MS,
    FAILOVER_TIMEOUT_MS,
    MASTER_NAME,
    QUORUM,
    SENTINELS,
    SentinelBroker,
)
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.local import processes
from celery_chaos.placements.local.redis_server import (
    READY_DEADLINE,
    RedisServer,
    RedisUnavailable,
    find_redis_server,
)
from celery_chaos.placements.ports import free_port


class _DataNode(RedisServer):
    """A master or replica: a :class:`RedisServer` that also authenticates to its master (every
    node may become a replica after a failover) and, for the replica, follows ``master``."""

    def __init__(self, name: str, workdir: Path, password: str, follows: RedisServer | None):
        super().__init__(name, workdir)
        self.password = password
        self.follows = follows

    def _command(self) -> list[str]:
        extra = ["--masterauth", self.password]
        if self.follows is not None:
            extra += ["--replicaof", "127.0.0.1", str(self.follows.port)]
        return super()._command() + extra


class SentinelServer:
    """The whole topology as the local placement's broker server (``servers.BrokerServer``)."""

    def __init__(self, spec: BrokerSpec, workdir: Path):
        self.name = "broker"
        self.workdir = workdir
        password = secrets.token_hex(16)
        self.sentinel_password = secrets.token_hex(16)
        self.master = _DataNode("broker-master", workdir, password, None)
        self.replica = _DataNode("broker-replica", workdir, password, self.master)
        self.sentinel_ports: list[int] = []
        self.sentinels: list[subprocess.Popen] = []
        self.on_spawn: Callable[[subprocess.Popen], None] | None = None
        self._killed: _DataNode | None = None

    @property
    def port(self) -> int:
        """The first Sentinel's port: where a client starts looking for the master."""
        return self.sentinel_ports[0] if self.sentinel_ports else 0

    def missing(self) -> str | None:
        return None

    def broker(self, spec: BrokerSpec, log: Callable[[str], None]) -> SentinelBroker:
        return SentinelBroker.at(
            spec, self.master.password, self.sentinel_password, self.sentinel_ports, log
        )

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        for node in (self.master, self.replica):
            node.on_spawn = self.on_spawn
            node.start()
        self._wait_replicating()
        for i in range(SENTINELS):
            self._start_sentinel(i)
        self._wait_sentinels_agree()

    def _sentinel_conf(self, i: int, port: int) -> Path:
        folder = self.workdir / f"broker-sentinel-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "sentinel.conf"  # Sentinel rewrites its file: each has its own
        name, master = MASTER_NAME, self.master
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
            f"requirepass {self.sentinel_password}\n"
            f"sentinel monitor {name} 127.0.0.1 {master.port} {QUORUM}\n"
            f"sentinel auth-pass {name} {master.password}\n"
            f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        return conf

    def _start_sentinel(self, i: int) -> None:
        for _ in range(5):  # a port clash (parallel runs): another port
            port = free_port()
            conf = self._sentinel_conf(i, port)
            cmd = [find_redis_server(), str(conf), "--sentinel"]
            process = processes.spawn(cmd, self.workdir / f"broker-sentinel-{i}.log")
            if self.on_spawn is not None:
                self.on_spawn(process)
            if self._answers(port, process):
                self.sentinel_ports.append(port)
                self.sentinels.append(process)
                return
            processes.stop(process, grace=1)
        raise RedisUnavailable(f"broker-sentinel-{i}: did not start (see {self.workdir})")

    def sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            password=self.sentinel_password,
            socket_timeout=5,
            socket_connect_timeout=2,
        )

    def _answers(self, port: int, process: subprocess.Popen) -> bool:
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline and process.poll() is None:
            try:
                return bool(self.sentinel_client(port).ping())
            except redis.RedisError:
                time.sleep(0.01)
        return False

    def _wait_replicating(self) -> None:
        """The replica has synced (a failover before that would promote an empty replica)."""
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            info = self.replica.client().info("replication")
            if info.get("master_link_status") == "up":
                return
            time.sleep(0.02)
        raise RedisUnavailable("broker-replica: did not sync with the master")

    def _wait_sentinels_agree(self) -> None:
        """Every Sentinel sees the replica and the other Sentinels (a failover needs both)."""
        deadline = time.monotonic() + 3 * READY_DEADLINE
        while time.monotonic() < deadline:
            views = [
                self.sentinel_client(p).sentinel_master(MASTER_NAME) for p in self.sentinel_ports
            ]
            others = SENTINELS - 1
            if all(v["num-slaves"] >= 1 and v["num-other-sentinels"] >= others for v in views):
                return
            time.sleep(0.05)
        raise RedisUnavailable("broker sentinels: did not discover the replica and each other")

    def current_master(self) -> _DataNode:
        """The data node the Sentinels name as master now."""
        host, port = self.sentinel_client(self.port).sentinel_get_master_addr_by_name(MASTER_NAME)
        return self.master if int(port) == self.master.port else self.replica

    # --- faults ----------------------------------------------------------------------
    def failover(self, how: str) -> str:
        """``kill``: SIGKILL the master (the Sentinels promote the replica once it was silent
        for :data:`DOWN_AFTER_MS`); ``sentinel``: ``SENTINEL FAILOVER`` with the master alive
        (it becomes a replica, its clients are disconnected)."""
        master = self.current_master()
        if how == "sentinel":
            self.sentinel_client(self.port).execute_command("SENTINEL FAILOVER", MASTER_NAME)
            return f"SENTINEL FAILOVER {MASTER_NAME}: master :{master.port} is demoted"
        master.stop(signal.SIGKILL)
        self._killed = master
        return (
            f"master :{master.port} SIGKILLed (stays down); the Sentinels promote the replica"
            f" after {DOWN_AFTER_MS} ms of silence"
        )

    def restart(self, sig: int = signal.SIGKILL, down_for: float = 0.0) -> None:
        """Crash the current master and start it again on its port (no failover if it is back
        within :data:`DOWN_AFTER_MS`)."""
        self.current_master().restart(sig, down_for)

    def restart_detail(self) -> str:
        return f"broker master SIGKILLed and restarted (Sentinels on :{self.port})"

    def discard(self) -> None:
        for process in self.sentinels:
            processes.stop(process, grace=2)
        self.sentinels = []
        for node in (self.master, self.replica):
            node.stop()
