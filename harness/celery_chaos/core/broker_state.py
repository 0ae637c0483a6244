"""The broker's final state as the checker needs it: where each task's message sits.

Backends produce it (Redis: queues and the ``unacked`` hash; RabbitMQ: ready, unacknowledged
and dead-lettered messages, and each queue's delivery limit); the checker reads it to tell
``pending`` from ``lost`` and ``dead_lettered``. It lives apart from the checker so a backend
depends on this small shape only, never on the checker's internals.

Locations: ``queue:<name>`` (ready in a queue), ``unacked`` (delivered, not acknowledged) and
``dead_letter:<queue>:<reason>:<died in>`` (RabbitMQ: parked in ``<queue>``, which no worker
consumes, by a dead-letter exchange; ``<reason>`` is the ``x-death`` reason, e.g.
``delivery_limit``, ``rejected``, ``expired``, ``maxlen``; ``<died in>`` the queue it left).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEAD_LETTER = "dead_letter:"


def dead_letter_location(queue: str, reason: str, died_in: str) -> str:
    """Where a dead-lettered message sits: the queue holding it, why and where it died."""
    return f"{DEAD_LETTER}{queue}:{reason}:{died_in}"


def is_dead_letter(location: str) -> bool:
    return location.startswith(DEAD_LETTER)


@dataclass
class BrokerState:
    """Where each task's message sits in the broker at the end (e.g. ``queue:celery``), and
    the delivery limit of each queue that has one (RabbitMQ quorum queues)."""

    reachable: bool = True
    locations: dict[str, list[str]] = field(default_factory=dict)
    delivery_limits: dict[str, int] = field(default_factory=dict)
    # Facts about the broker that explain where messages sit, e.g. that no worker can restore
    # an unacknowledged message yet (Redis: Kombu's restore mutex left held by a dead worker).
    notes: list[str] = field(default_factory=list)

    def may_hold(self, task_ids: set[str]) -> bool:
        """Whether a message of these tasks may still be in the broker (an unreachable broker
        might hold anything)."""
        return not self.reachable or bool(task_ids & self.locations.keys())
