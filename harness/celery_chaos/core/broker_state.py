"""The broker's final state as the checker needs it: where each task's message sits.

Backends produce it (Redis: queues and the ``unacked`` hash; RabbitMQ: ready and unacknowledged
messages); the checker reads it to tell ``pending`` from ``lost``. It lives apart from the
checker so a backend depends on this small shape only, never on the checker's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BrokerState:
    """Where each task's message sits in the broker at the end (e.g. ``queue:celery``)."""

    reachable: bool = True
    locations: dict[str, list[str]] = field(default_factory=dict)

    def may_hold(self, task_ids: set[str]) -> bool:
        """Whether a message of these tasks may still be in the broker (an unreachable broker
        might hold anything)."""
        return not self.reachable or bool(task_ids & self.locations.keys())
