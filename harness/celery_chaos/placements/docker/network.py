"""drop_connections, latency and bandwidth on the docker placement, through the harness's own proxy.

A worker container normally reaches the broker by its container name. When the scenario (or its
storm) declares ``drop_connections``, ``latency`` or ``bandwidth``, each worker instead gets its
own proxy (:mod:`celery_chaos.placements.proxy`), run in the harness process:

- it listens on the run's broker network's gateway address only (containers on a user-defined
  bridge reach the host there), never on 0.0.0.0, so nothing outside the run's network sees it;
- it forwards to the broker's port published on the host's loopback.

The faults then have the local placement's semantics exactly. ``partition`` stays ``docker network
disconnect``; on a proxied worker the proxy is blackholed too, since a container cut off its
broker network can still reach the host's gateway address through its other network.

Where the gateway cannot be used (a rootless engine: the address is not the host's; a host
firewall dropping bridge traffic to the host), the run is not runnable with a one-line reason:
the first proxied worker probes its proxy once, before anything depends on it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from celery_chaos.core.scenario import Scenario
from celery_chaos.faults.base import DOCKER
from celery_chaos.faults.registry import proxied
from celery_chaos.placements.base import Unsupported, Worker
from celery_chaos.placements.proxy import Proxy, ProxyHub

PROBE_SECONDS = 3
_PROBE = (
    "import socket,sys\n"
    f"try: socket.create_connection((sys.argv[1], int(sys.argv[2])), {PROBE_SECONDS}).close()\n"
    "except OSError as e: sys.exit(f'{type(e).__name__}: {e}')\n"
)


def needs_proxy(scenario: Scenario) -> bool:
    """Whether the workers go through a proxy: only when a declared fault needs one, so a
    scenario without them reaches the broker exactly as before."""
    kinds = {fault.kind for fault in scenario.faults}
    storm = getattr(scenario, "storm", None)
    if storm is not None:
        kinds |= set(storm.kinds())
    return proxied(kinds, DOCKER)  # partition has the engine's own disconnect


def gateway_address(client: Any, network_name: str) -> str:
    """The host's address on a user-defined bridge network (its IPAM gateway)."""
    network = client.networks.get(network_name)
    for config in network.attrs.get("IPAM", {}).get("Config") or []:
        if config.get("Gateway"):
            return str(config["Gateway"])
    raise Unsupported(f"network faults on docker: network {network_name} has no gateway")


def with_address(url: str, host: str, port: int) -> str:
    """``url`` with its host and port replaced, credentials, path and query kept (any scheme)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


class BrokerProxies:
    """One proxy per worker on the broker network's gateway, once :meth:`listen_on` has named
    it (the scenario declares a proxy fault); until then every call leaves the worker direct.
    Stopped by :meth:`close`."""

    def __init__(self) -> None:
        self.gateway: str | None = None
        self.upstream = ("127.0.0.1", 0)
        self.hub: ProxyHub | None = None
        self.proxies: dict[int, Proxy] = {}  # worker index -> its own proxy
        self.probed = False

    def listen_on(self, gateway: str, upstream_port: int, loopback: str = "127.0.0.1") -> None:
        """Put the workers started from now on behind proxies on ``gateway``, forwarding to
        ``loopback:upstream_port`` (the broker's published port)."""
        self.gateway, self.upstream = gateway, (loopback, upstream_port)

    def prepare(self, scenario: Scenario, client: Any, network_name: str, port: int) -> None:
        """:meth:`listen_on` the network's gateway when the scenario needs the proxy."""
        if needs_proxy(scenario):
            self.listen_on(gateway_address(client, network_name), port)

    def open(self, index: int, broker_url: str) -> str:
        """Open worker ``index``'s proxy; returns the broker URL the worker is given (the same
        URL when the workers reach the broker directly)."""
        if self.gateway is None:
            return broker_url
        self.hub = self.hub or ProxyHub()
        try:
            proxy = self.hub.open(f"w{index}", self.upstream, host=self.gateway)
        except OSError as error:
            raise Unsupported(
                f"network faults on docker: the harness cannot listen on the broker"
                f" network's gateway {self.gateway} ({error.strerror or error}; rootless engine?)"
            ) from None
        self.proxies[index] = proxy
        return with_address(broker_url, self.gateway, proxy.port)

    def probe(self, container: Any, index: int) -> None:
        """Once per run: can a worker container reach its proxy on the gateway? Raises
        :class:`Unsupported` naming why not (a host firewall), so no run passes on a fault
        that could never reach the worker."""
        if self.probed or index not in self.proxies:
            return
        self.probed = True
        import docker.errors

        port = str(self.proxies[index].port)
        try:
            result = container.exec_run(["python", "-c", _PROBE, self.gateway, port])
        except docker.errors.APIError:  # the container already stopped: the ready wait says why
            self.probed = False
            return
        if result.exit_code != 0:
            detail = " ".join(result.output.decode(errors="replace").split())[-160:]
            raise Unsupported(
                f"network faults on docker: worker containers cannot reach the"
                f" harness's proxy at {self.gateway}:{port} (host firewall?): {detail}"
            )

    def cut(self, worker: Worker, connected: bool) -> None:
        """Blackhole (or heal) a proxied worker's proxy along with docker's partition: a
        container cut off the broker network still reaches the gateway through its other
        network (measured), so the disconnect alone would not cut it. No-op when direct."""
        proxy = self.proxies.get(worker.index)
        if proxy is not None and connected:
            proxy.heal()
        elif proxy is not None:
            proxy.partition()

    def proxy(self, worker: Worker) -> Proxy:
        proxy = self.proxies.get(worker.index)
        if proxy is None:
            raise Unsupported(
                f"{worker.name} reaches the broker directly (no proxy): declare"
                " drop_connections, latency or bandwidth among the scenario's faults"
            )
        return proxy

    def holds_data(self) -> bool:
        """Whether a proxy holds bytes in flight (see ``ProxyHub.holds_data``)."""
        return self.hub is not None and self.hub.holds_data()

    def close(self) -> None:
        if self.hub is not None:
            self.hub.close()
            self.hub = None
