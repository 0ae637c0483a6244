"""A RabbitMQ broker: what every node the harness starts is told, whichever placement starts it
(a local node's files, a container's ``/etc/rabbitmq``), how it is known to be ready, and the
:class:`RabbitMQBroker` the placements hand out (inspection: :mod:`.rabbitmq_inspection`).

- a random administrator created by the node itself at first boot (``default_user``), so the
  ``guest`` account never exists, not even for a moment;
- the scenario's ``broker.consumer_timeout``, with a channel tick short enough to apply it
  (RabbitMQ checks consumer timeouts on that tick, every 60 s by default);
- ready means an AMQP login with that user succeeds: the listener opens after queue recovery,
  so a login proves the node serves AMQP (no fixed sleep, no ``rabbitmqctl`` VM per poll).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import amqp

from celery_chaos.brokers import rabbitmq_inspection as inspection
from celery_chaos.brokers import rabbitmq_queues
from celery_chaos.brokers.base import Broker
from celery_chaos.core.broker_state import BrokerState

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import BrokerSpec

DEFAULT_TICK_MS = 60_000
CONSUMER_TIMEOUT_TICK_MS = 500
# A queue count through ``rabbitmqctl`` boots an Erlang VM (about 0.5 s of CPU; through
# ``erl_call``, :mod:`.rabbitmq_erl`, milliseconds where it exists): the quiet check reuses an
# answer for this long rather than keeping a core busy.
COUNT_INTERVAL = 1.0


def rabbitmq_conf(user: str, password: str, consumer_timeout: float | None) -> str:
    """The ``rabbitmq.conf`` (sysctl format) lines of a harness broker."""
    lines = [
        f"default_user = {user}",
        f"default_pass = {password}",
        "default_vhost = /",
        "default_user_tags.administrator = true",
        "default_permissions.configure = .*",
        "default_permissions.read = .*",
        "default_permissions.write = .*",
        "loopback_users = none",
    ]
    if consumer_timeout is not None:
        lines.append(f"consumer_timeout = {int(consumer_timeout * 1000)}")
    return "\n".join([*lines, ""])


def advanced_config(consumer_timeout: float | None) -> str:
    """The ``advanced.config`` (Erlang terms): the channel tick that enforces the timeout."""
    tick = CONSUMER_TIMEOUT_TICK_MS if consumer_timeout is not None else DEFAULT_TICK_MS
    return f"[{{rabbit, [{{channel_tick_interval, {tick}}}]}}].\n"


def connect(
    host: str, port: int, user: str, password: str, timeout: float = 5, vhost: str = "/"
) -> amqp.Connection:
    """A connected py-amqp client (for inspection, readiness and tests)."""
    connection = amqp.Connection(
        f"{host}:{port}", userid=user, password=password, connect_timeout=timeout,
        virtual_host=vhost,
    )  # fmt: skip
    connection.connect()
    return connection


def login_works(host: str, port: int, user: str, password: str) -> bool:
    """Whether an AMQP login succeeds now (the readiness probe)."""
    try:
        connect(host, port, user, password, timeout=2).close()
    except (OSError, amqp.exceptions.AMQPError):
        return False
    return True


class RabbitMQBroker(Broker):
    """A RabbitMQ node reached through ``access`` (``rabbitmqctl`` and AMQP: a local node or a
    container, :class:`~.rabbitmq_inspection.RabbitMQAccess`)."""

    kind = "rabbitmq"
    closes_connections = True
    snapshot_closes_connections = True

    def __init__(
        self,
        spec: BrokerSpec,
        access: inspection.RabbitMQAccess,
        url: str,
        worker_url: str | None = None,
        log: Callable[[str], None] = print,
    ):
        super().__init__(spec, url, worker_url, log)
        self.access = access
        self._held: tuple[float, int | None] | None = None  # last count: (when, messages)
        self._loop_enders: dict[frozenset, bool] = {}  # may_end_loops answers, per queue set

    def state(self, live: bool = False) -> BrokerState:
        """Closes every client connection (see :mod:`.rabbitmq_inspection`): only for the final
        snapshot, workers frozen and the dispatching client closed; ``live`` reads the ready
        messages only and closes nothing. A count that does not add up is logged and makes the
        state unreachable."""
        found = (inspection.inspect_live if live else inspection.inspect)(self.access)
        for problem in found.problems:
            self.log(f"   broker inspection: {problem}")
        if found.problems:
            return dataclasses.replace(found.state, reachable=False)
        return found.state

    def _held_messages(self) -> int | None:
        """Messages in the task queues, ready or unacked (None: unreachable), counted at most
        once per :data:`COUNT_INTERVAL`."""
        now = time.monotonic()
        if self._held is None or now - self._held[0] >= COUNT_INTERVAL:
            parked = frozenset(self.spec.declare_queues)  # dead-letter queues
            self._held = (now, inspection.held_messages(self.access, parked))
        return self._held[1]

    def occupancy(self, task_ids: set[str]) -> tuple[bool, bool]:
        """Any message in a task queue, ready or unacked (a task id cannot be read without a
        delivery)."""
        held = self._held_messages()
        return held != 0, held != 0

    def may_hold_besides(self, task_ids: set[str], others: int) -> bool:
        """A task id cannot be read without a delivery: any task message beyond ``others``
        (ready or unacked, counted by ``rabbitmqctl``) may be one of ``task_ids``."""
        held = self._held_messages()
        return held is None or held > others

    def may_end_loops(self, queues: set[str | None]) -> bool:
        """True unless every queue is a classic queue that no argument or policy gives a
        delivery limit, a TTL, a length limit or a dead-letter exchange (a quorum queue may drop
        a message at its delivery limit, 20 by default from RabbitMQ 4.0). Read once per queue
        set (``rabbitmqctl``: queue arguments and policies)."""
        key = frozenset(queues)
        if key not in self._loop_enders:
            try:
                counts = inspection.queue_counts(self.access)
                policies = inspection.policy_definitions(self.access, counts)
            except RuntimeError:
                return True  # not read now; asked again at the next pass
            self._loop_enders[key] = rabbitmq_queues.may_end_loops(key, counts, policies)
        return self._loop_enders[key]

    def answers(self) -> bool:
        try:
            self.access.connection().close()
            return True
        except Exception:
            return False

    def version(self) -> str | None:
        """From the AMQP handshake (``server_properties``): no ``rabbitmqctl`` VM to boot."""
        connection = self.access.connection()
        try:
            version = connection.server_properties.get("version")
        finally:
            connection.close()
        return str(version) if version else None

    def settle(self) -> None:
        """Write the node's cached metadata to disk (:func:`~.rabbitmq_inspection.
        flush_metadata_log`), so that a crash soon after measures the crash, not RabbitMQ's 2 s
        window for a just-declared queue."""
        failed = inspection.flush_metadata_log(self.access)
        if failed:
            self.log(failed)

    def declare_queues(self) -> None:
        """E.g. a dead-letter queue no worker consumes (Celery declares only what it uses)."""
        if self.spec.declare_queues:
            specs = {name: spec.model_dump() for name, spec in self.spec.declare_queues.items()}
            inspection.declare_queues(self.access, specs)

    def close_connections(self, column: str, values: set[str], reason: str) -> list[str]:
        # The table (not JSON) prints pids as <node.creation.N.M>, the form close_connection takes.
        table = self.access.ctl("list_connections", "pid", "vhost", column).splitlines()
        rows = [[cell.strip() for cell in line.split("\t")] for line in table]
        ours = [row for row in rows if len(row) == 3 and row[1] == self.access.vhost]
        pids = [row[0] for row in ours if row[2] in values]
        for pid in pids:
            self.access.ctl("close_connection", pid, reason)
        return pids
