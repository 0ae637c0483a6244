"""``broker.topology: sentinel`` on the docker placement: a master, a replica and three Sentinels,
each a container of the run's Redis image on the run's broker network, labelled like the others.

Addresses: the Sentinels monitor the master at its container IP on the broker network and report
the master by that IP (no ``announce-ip``: every node, worker and Sentinel is on that one network,
so the address a node sees is the one the others can use). Workers reach the Sentinels by
container name; the harness on the host reaches Sentinels and master at their container IPs,
which a Linux bridge network routes from the host (measured here: a PING from the host to a
container's IP answers). Where it does not (Docker Desktop's VM), :meth:`start` says so in one
line rather than letting a run pass without ever reaching the broker.

Nothing is published on the host: there is no single broker address, so the harness's proxy
(drop_connections, latency, bandwidth, partition_one_way) is refused on this topology, as on the
local placement.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from testcontainers.core.container import DockerContainer

from celery_chaos.brokers.sentinel import (
    DOWN_AFTER_MS,
    FAILOVER_TIMEOUT_MS,
    MASTER_NAME,
    QUORUM,
    SENTINELS,
    SentinelBroker,
)
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.base import BackendError
from celery_chaos.placements.docker import probes
from celery_chaos.placements.docker.containers import (
    ENGINE_TIMEOUT,
    REDIS_PORT,
    REDIS_READY_SECONDS,
    RunNetwork,
    client_options,
    crash,
)

SENTINEL_PORT = 26379
# Sentinel rewrites its configuration file, so it cannot be given on the command line only: the
# container's shell writes one line per argument to a file of its own, then becomes the Sentinel.
_WRITE_CONF_AND_RUN = (
    'printf "%s\\n" "$@" > /tmp/sentinel.conf && exec redis-server /tmp/sentinel.conf --sentinel'
)


class SentinelContainers:
    """The whole topology as the docker placement's broker service (same builder calls as a
    :class:`~celery_chaos.placements.docker.containers.LoopbackRedis`, so the placement starts,
    logs and stops it like any broker)."""

    host_port = 0  # nothing published: no proxy on this topology (refused before start)

    def __init__(self, image: str, spec: BrokerSpec, password: str, sentinel_password: str):
        self.image, self.spec = image, spec
        self.password, self.sentinel_password = password, sentinel_password
        self.prefix = "broker"
        self.network: RunNetwork | None = None
        self.labels: dict[str, str] = {}
        self.nodes: dict[str, DockerContainer] = {}  # master, replica, sentinel-0..2
        self.address: dict[str, str] = {}  # node -> its IP on the broker network

    # --- the builder calls the placement makes on every service --------------------
    def with_name(self, name: str) -> SentinelContainers:
        self.prefix = name
        return self

    def with_network(self, network: RunNetwork) -> SentinelContainers:
        self.network = network
        return self

    def with_kwargs(self, labels: dict[str, str]) -> SentinelContainers:
        self.labels = labels
        return self

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> SentinelContainers:
        """Master, then a replica that has synced, then Sentinels that see it and each other
        (a failover before either would promote nothing, or an empty replica)."""
        self._start_node("master", self._data_command(None))
        self._wait(lambda: bool(self.data_client("master").ping()), "master: no PING answer")
        self._start_node("replica", self._data_command(self.address["master"]))
        self._wait(self._replicating, "replica: did not sync with the master")
        for i in range(SENTINELS):
            self._start_node(f"sentinel-{i}", self._sentinel_command())
        self._wait(self._sentinels_agree, "sentinels: did not discover the replica and each other")
        return self

    def _data_command(self, follows: str | None) -> list[str]:
        aof = "yes" if self.spec.persistence == "aof" else "no"
        command = [
            "redis-server", "--requirepass", self.password, "--masterauth", self.password,
            "--save", "", "--appendonly", aof, "--appendfsync", "always", "--protected-mode", "no",
        ]  # fmt: skip
        return command + (["--replicaof", follows, str(REDIS_PORT)] if follows else [])

    def _sentinel_command(self) -> list[str]:
        name = MASTER_NAME
        lines = [
            f"port {SENTINEL_PORT}",
            "protected-mode no",
            f"requirepass {self.sentinel_password}",
            f"sentinel monitor {name} {self.address['master']} {REDIS_PORT} {QUORUM}",
            f"sentinel auth-pass {name} {self.password}",
            f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {name} 1",
        ]
        return ["sh", "-c", _WRITE_CONF_AND_RUN, "sentinel", *lines]

    def _start_node(self, node: str, command: list[str]) -> None:
        assert self.network is not None, "with_network first"
        container = (
            DockerContainer(self.image, docker_client_kw=client_options())
            .with_name(f"{self.prefix}-{node}")
            .with_network(self.network)
            .with_command(command)
            .with_kwargs(labels=self.labels | {"celery-chaos.node": node})
        )
        self.nodes[node] = container  # before start: stop() removes a half-started one too
        container.start()
        self._locate(node)

    def _locate(self, node: str) -> None:
        assert self.network is not None
        address = probes.address_on(self.nodes[node].get_wrapped_container(), self.network.name)
        if not address:
            raise BackendError(f"broker {node}: no address on {self.network.name}")
        self.address[node] = address

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until it holds; a host that never reaches a container IP is named."""
        deadline = time.monotonic() + REDIS_READY_SECONDS
        error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (redis.RedisError, OSError) as exc:
                error = exc
            time.sleep(0.05)
        raise BackendError(
            f"broker.topology sentinel on docker: {what} within {REDIS_READY_SECONDS} s"
            f" ({error or 'not ready'}; the harness reaches the nodes at their container IPs,"
            " which a Linux bridge network routes from the host but Docker Desktop does not)"
        )

    def _replicating(self) -> bool:
        info = self.data_client("replica").info("replication")
        return info.get("master_link_status") == "up"

    def _sentinels_agree(self) -> bool:
        views = [self.sentinel_client(i).sentinel_master(MASTER_NAME) for i in range(SENTINELS)]
        others = SENTINELS - 1
        return all(v["num-slaves"] >= 1 and v["num-other-sentinels"] >= others for v in views)

    def stop(self) -> None:
        for container in self.nodes.values():
            try:
                container.stop()
            except Exception:  # a node that is gone already: the label sweep removes the rest
                continue

    # --- clients -----------------------------------------------------------------------
    def data_client(self, node: str) -> redis.Redis:
        return redis.Redis(
            host=self.address[node], port=REDIS_PORT, password=self.password,
            socket_timeout=5, socket_connect_timeout=2,
        )  # fmt: skip

    def sentinel_client(self, i: int) -> redis.Redis:
        return redis.Redis(
            host=self.address[f"sentinel-{i}"], port=SENTINEL_PORT,
            password=self.sentinel_password, socket_timeout=5, socket_connect_timeout=2,
        )  # fmt: skip

    def broker(self, spec: BrokerSpec, host: str, log: Callable[[str], None]) -> SentinelBroker:
        """The broker the harness reaches at the Sentinels' IPs; workers at their names
        (``host`` is the single-server name, unused here)."""
        ips = [self.address[f"sentinel-{i}"] for i in range(SENTINELS)]
        names = [f"{self.prefix}-sentinel-{i}" for i in range(SENTINELS)]
        broker = SentinelBroker(
            spec, _url(self.password, ips), [(ip, SENTINEL_PORT) for ip in ips],
            self.password, self.sentinel_password, log,
        )  # fmt: skip
        broker.worker_url = _url(self.password, names)
        return broker

    def current_master(self) -> str:
        """The data node the Sentinels name as master now."""
        host, _ = self.sentinel_client(0).sentinel_get_master_addr_by_name(MASTER_NAME)
        host = host.decode() if isinstance(host, bytes) else str(host)
        if host not in (self.address["master"], self.address["replica"]):
            raise BackendError(f"the Sentinels name {host} as master: not a node of this run")
        return "master" if host == self.address["master"] else "replica"

    # --- faults ------------------------------------------------------------------------
    def failover(self, how: str) -> str:
        """``kill``: docker kill the master's container (it stays down; the Sentinels promote
        the replica after :data:`DOWN_AFTER_MS` of silence); ``sentinel``: ``SENTINEL
        FAILOVER`` with the master alive (it is demoted, its clients disconnected)."""
        node = self.current_master()
        name = f"{self.prefix}-{node}"
        if how == "sentinel":
            self.sentinel_client(0).execute_command("SENTINEL FAILOVER", MASTER_NAME)
            return f"SENTINEL FAILOVER {MASTER_NAME}: master {name} is demoted"
        container = self.nodes[node].get_wrapped_container()
        container.kill(signal="SIGKILL")
        container.wait(timeout=ENGINE_TIMEOUT)
        return (
            f"master {name} SIGKILLed (docker kill; stays down); the Sentinels promote the"
            f" replica after {DOWN_AFTER_MS} ms of silence"
        )

    def crash_and_restart(self, down_for: float = 0.0) -> None:
        """Crash the current master's container and start it again (no failover if it is back
        within :data:`DOWN_AFTER_MS`)."""
        node = self.current_master()
        container = self.nodes[node].get_wrapped_container()
        crash(container, down_for)
        container.start()
        self._locate(node)
        self._wait(lambda: bool(self.data_client(node).ping()), f"{node}: no PING after restart")

    def restart_detail(self) -> str:
        return f"broker master container SIGKILLed and restarted ({self.prefix}-sentinel-*)"

    def get_wrapped_container(self) -> _Logs:
        return _Logs(self.nodes)


class _Logs:
    """Every node's log in one file, each under its container's name (placement._save_logs)."""

    def __init__(self, nodes: dict[str, DockerContainer]):
        self.nodes = nodes

    def logs(self) -> bytes:
        parts = []
        for node, container in self.nodes.items():
            try:
                text = container.get_wrapped_container().logs()
            except Exception as error:  # one unreadable log must not hide the others
                text = f"(no log: {error})\n".encode()
            parts.append(f"== broker-{node} ==\n".encode() + text)
        return b"".join(parts)


def _url(password: str, hosts: list[str]) -> str:
    return ";".join(f"sentinel://:{password}@{host}:{SENTINEL_PORT}/0" for host in hosts)
