"""One RabbitMQ container shared by the docker scenarios of a suite, each in a vhost of its own
(what ``local/rabbitmq_shared.py`` is for local nodes; which scenarios may share:
:func:`celery_chaos.placements.sharing.can_share`).

The container joins each scenario's broker network under the name that scenario's workers use
(``chaos-<run id>-broker``, a network alias) and leaves it when the scenario ends, so a worker
reaches it exactly as it reaches a broker container of its own run, and ``partition`` (the
worker leaves that network) cuts the worker off as before. The container and its own network are
labelled as a run of their own (``celery-chaos.run=<id>``), so ``celery-chaos cleanup`` and
Testcontainers' reaper find them like any run's; :meth:`SharedRabbitMQContainers.close` removes
them when the suite ends. One container per broker image the scenarios ask for.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import amqp

from celery_chaos.brokers.rabbitmq import RabbitMQBroker, connect
from celery_chaos.brokers.rabbitmq_vhosts import add_vhost, delete_vhost
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.docker.containers import (
    LOOPBACK,
    ROLE_LABEL,
    RUN_LABEL,
    RunNetwork,
    cleanup,
)
from celery_chaos.placements.docker.rabbitmq import AMQP_PORT, LoopbackRabbitMQ
from celery_chaos.placements.ports import free_port


class SharedRabbitMQContainers:
    """The suite's RabbitMQ containers, one per image, each started at its first lease."""

    def __init__(self) -> None:
        self.id = f"shared-{secrets.token_hex(4)}"  # the run label of the containers
        self.containers: dict[str, LoopbackRabbitMQ] = {}
        self.network: RunNetwork | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> SharedRabbitMQContainers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def lease(self, run_id: str, image: str, network: RunNetwork) -> ContainerVhost:
        """Run ``run_id``'s broker: a vhost of the ``image`` container, which joins the run's
        broker ``network`` under the broker's name there (``chaos-<run id>-broker``)."""
        return ContainerVhost(self, image, f"chaos-{run_id}", network, f"chaos-{run_id}-broker")

    def running(self, image: str) -> LoopbackRabbitMQ:
        """The container of ``image``, started (with the shared network) if not running."""
        with self._lock:
            container = self.containers.get(image)
            if container is not None and _status(container) == "running":
                return container
            labels = {RUN_LABEL: self.id}
            if self.network is None:
                self.network = RunNetwork(f"chaos-{self.id}", labels)
                self.network.create()
            name = f"chaos-{self.id}-rabbitmq-{secrets.token_hex(2)}"
            container = LoopbackRabbitMQ(image, free_port())
            container.with_name(name).with_network(self.network).with_kwargs(
                labels=labels | {ROLE_LABEL: "broker"}
            )
            container.start()
            self.containers[image] = container
            return container

    def close(self) -> None:
        """Remove the containers and their network (by label: whatever is left of them too)."""
        with self._lock:
            if self.network is None:
                return  # never used: nothing was created (and docker may not even run here)
            self.containers.clear()
            self.network = None
            cleanup(self.id)


def _status(container: LoopbackRabbitMQ) -> str:
    try:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return str(wrapped.status)
    except Exception:  # never started, or removed meanwhile
        return "gone"


class ContainerVhost:
    """One scenario's broker on a shared container: what the docker placement keeps as its
    ``broker`` service, and the inspection's ``RabbitMQAccess`` (clients on its own vhost)."""

    def __init__(
        self,
        shared: SharedRabbitMQContainers,
        image: str,
        vhost: str,
        network: RunNetwork,
        alias: str,
    ):
        self.shared, self.image, self.vhost = shared, image, vhost
        self.network, self.alias = network, alias
        self.container: LoopbackRabbitMQ | None = None
        self.joined = False
        self.since = 0  # when the vhost was added (the run's share of the container's log)

    def start(self) -> ContainerVhost:
        """Join the run's broker network under the broker's name and add the vhost."""
        self.container = self.shared.running(self.image)
        self.since = int(time.time())
        container_id = self.container.get_wrapped_container().id
        self.network.connect(container_id, network_aliases=[self.alias])
        self.joined = True
        add_vhost(self.container, self.vhost, self.container.user)
        return self

    @property
    def host_port(self) -> int:
        assert self.container is not None
        return self.container.host_port

    def url(self, host: str = LOOPBACK, port: int | None = None) -> str:
        node = self.container
        assert node is not None
        return f"amqp://{node.user}:{node.password}@{host}:{port or node.host_port}/{self.vhost}"

    def broker(self, spec: BrokerSpec, host: str, log: Callable[[str], None]) -> RabbitMQBroker:
        return RabbitMQBroker(spec, self, self.url(), self.url(host, AMQP_PORT), log=log)

    def connection(self) -> amqp.Connection:
        node = self.container
        assert node is not None
        return connect(LOOPBACK, node.host_port, node.user, node.password, vhost=self.vhost)

    def ctl(self, *args: str) -> str:
        assert self.container is not None
        return self.container.ctl(*args)

    def erl(self, expression: str) -> str:
        assert self.container is not None
        return self.container.erl(expression)

    def stop(self) -> None:
        """The run is over: delete the vhost (its queues, messages and connections go with it)
        and leave the run's network, which the run removes next."""
        if self.container is None:
            return
        try:
            delete_vhost(self.container, self.vhost)
        finally:
            if self.joined:
                self.network.disconnect(self.container.get_wrapped_container().id)
            self.joined = False

    def get_wrapped_container(self) -> Any:
        """The container's log, as the run saves it, from the moment the vhost was added."""
        return _LogSince(self.container, self.since)


class _LogSince:
    def __init__(self, container: LoopbackRabbitMQ | None, since: int):
        self.container, self.since = container, since

    def logs(self) -> bytes:
        if self.container is None:
            return b""
        header = b"# a shared RabbitMQ container: its log since this run's vhost was added\n"
        return header + self.container.get_wrapped_container().logs(since=self.since)
