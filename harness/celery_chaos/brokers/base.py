"""What every broker kind provides, wherever its server runs: its URLs, where each task message
sits (one :class:`~celery_chaos.core.broker_state.BrokerState` for every kind), the quiet check,
a liveness probe, and what it must be told once it is up.

A placement (local processes, containers) runs the broker's server and hands the Broker the
addresses it got; nothing here starts, stops or signals a process. So a new broker kind is one
module here plus a server per placement, and no placement asks which kind it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery_chaos.core.broker_state import BrokerState

if TYPE_CHECKING:
    from celery_chaos.core.scenario_parts import BrokerSpec


class Broker(ABC):
    """One running broker of a scenario, as the harness and its workers reach it."""

    kind: str = "?"
    # Whether the broker itself can close a chosen client's connections (the close_connection
    # fault): RabbitMQ can (``rabbitmqctl close_connection``), Redis has no such command here.
    closes_connections: bool = False
    # Whether the full (not ``live``) reading of :meth:`state` closes every client connection,
    # the dispatching client's included (RabbitMQ: an unacked message is named only that way).
    snapshot_closes_connections: bool = False

    def __init__(
        self,
        spec: BrokerSpec,
        url: str,
        worker_url: str | None = None,
        log: Callable[[str], None] = print,
    ):
        self.spec = spec
        self.url = url  # as the harness (the dispatching client, inspection) reaches it
        self.worker_url = worker_url or url  # as a worker reaches it (docker: by container name)
        self.log = log

    @abstractmethod
    def state(self, live: bool = False) -> BrokerState:
        """Where every task message sits (the final snapshot). ``live``: the environment goes
        on (a shared pytest environment), so nothing may be disturbed; a reading that cannot be
        trusted is logged and makes the state unreachable, so no task is called gone on it."""

    @abstractmethod
    def occupancy(self, task_ids: set[str]) -> tuple[bool, bool]:
        """(a message of these tasks may still be in the broker, the broker holds any task
        message at all), without side effects: the run loop's quiet check."""

    def may_hold_besides(self, task_ids: set[str], others: int) -> bool:
        """Whether a message of ``task_ids`` may be in the broker, where ``others`` messages of
        other tasks certainly are (a task in a redelivery loop always has one). Kinds that can
        look a task up by id ask :meth:`occupancy`."""
        return self.occupancy(task_ids)[0]

    def may_end_loops(self, queues: set[str | None]) -> bool:
        """Whether the broker itself may end a redelivery loop of messages from ``queues``
        (drop, expire or dead-letter a message that keeps coming back): then a run waits for
        its timeout rather than end on a proven loop (run.loop). Redis never does."""
        return False

    @abstractmethod
    def answers(self) -> bool:
        """Whether the broker answers at all (a cheap probe for reusing an environment)."""

    @abstractmethod
    def version(self) -> str | None:
        """The server's version, read from the server itself (None when it cannot say)."""

    def celery_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The scenario's Celery ``settings`` plus what every client of this broker needs (the
        workers' and the harness's: Sentinel's transport options); unchanged for most kinds."""
        return settings

    def settle(self) -> None:
        """Once the initial workers declared their queues: make what they declared survive a
        crash right after (nothing to do unless the kind says otherwise)."""
        return None

    def declare_queues(self) -> None:
        """Declare the scenario's ``broker.declare_queues`` on the broker just started or
        restarted (only kinds that have such queues do anything)."""
        return None

    def close_connections(self, column: str, values: set[str], reason: str) -> list[str]:
        """Have the broker close every client connection whose ``column`` (``peer_port``,
        ``peer_host``) is one of ``values``; the ids of those it closed. Only where
        :attr:`closes_connections` (the placement refuses the fault up front otherwise)."""
        raise NotImplementedError(f"a {self.kind} broker cannot close a client's connections")
