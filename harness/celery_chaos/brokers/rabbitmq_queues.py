"""A RabbitMQ queue as ``rabbitmqctl list_queues`` counts it, and what its settings (``x-``
arguments or a policy) do to the messages in it: a quorum queue's delivery limit, a parking
(dead-letter) queue, the settings under which RabbitMQ itself ends a redelivery loop. Pure
functions of the counts and policy definitions that :mod:`.rabbitmq_inspection` reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class QueueCount:
    ready: int
    unacked: int
    consumers: int = 0
    kind: str = "classic"  # RabbitMQ's queue type: classic, quorum, stream
    arguments: dict[str, Any] = field(default_factory=dict)  # x-arguments it was declared with
    policy: str = ""  # the name of the policy that applies to it, if any


def setting(count: QueueCount, policies: dict[str, dict], key: str) -> list[Any]:
    """A queue setting from its ``x-<key>`` argument and its policy's ``<key>``, if set."""
    found = [count.arguments.get(f"x-{key}"), policies.get(count.policy, {}).get(key)]
    return [value for value in found if value is not None]


def delivery_limits(counts: dict[str, QueueCount], policies: dict[str, dict]) -> dict[str, int]:
    """Each quorum queue's effective delivery limit: the lower of argument and policy
    (measured, see the docstring of rabbitmq_inspection); classic queues have none."""
    limits = {}
    for queue, count in counts.items():
        values = [int(v) for v in setting(count, policies, "delivery-limit")]
        if count.kind == "quorum" and values:
            limits[queue] = min(values)
    return limits


# Queue settings (``x-`` arguments or policy keys) under which RabbitMQ itself drops, expires or
# dead-letters a message, so a redelivery loop may end without the task.
LOOP_ENDING_SETTINGS = (
    "delivery-limit", "message-ttl", "expires", "max-length", "max-length-bytes",
    "dead-letter-exchange",
)  # fmt: skip


def may_end_loops(
    queues: frozenset[str | None], counts: dict[str, QueueCount], policies: dict[str, dict]
) -> bool:
    """Whether RabbitMQ may end a redelivery loop from any of ``queues``: one is unknown, not a
    classic queue, or has a loop-ending setting (:data:`LOOP_ENDING_SETTINGS`)."""
    for queue in queues:
        count = counts.get(queue or "")
        if count is None or count.kind != "classic":
            return True
        if any(setting(count, policies, key) for key in LOOP_ENDING_SETTINGS):
            return True
    return False


def parking_queues(counts: dict[str, QueueCount], policies: dict[str, dict]) -> set[str]:
    """Queues where a dead-lettered message stays: no consumer, and not a waiting room whose
    messages expire onward by themselves (message TTL plus a dead-letter exchange)."""
    return {
        queue
        for queue, count in counts.items()
        if not count.consumers
        and not (
            setting(count, policies, "message-ttl")
            and setting(count, policies, "dead-letter-exchange")
        )
    }
