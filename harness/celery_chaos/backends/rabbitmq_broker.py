"""Reading a RabbitMQ broker's state: which dispatched tasks still have a message in it.

RabbitMQ keeps a message in one of two places: *ready* in a queue, or *unacknowledged* on the
channel it was delivered to (a running ``acks_late`` task, or one prefetched but not started).
An unacked message goes back to ready the moment its channel or connection closes (a killed
worker's socket is closed by the kernel at once: no visibility timeout as on Redis). A message
rejected without requeue or expired goes to the queue's dead-letter exchange if one is set, so
it shows up as ready in that queue, or it is dropped: then it is *gone*.

What this module proves, and how (:func:`inspect`, after the harness froze every worker):

1. ``rabbitmqctl list_queues`` (asks each queue process; not sampled like the management
   plugin's counters) gives per queue the ready and unacked counts.
2. The ready messages are read with ``basic.get`` (no auto-ack) on a private connection and
   held, so every ready message is read exactly once: its task id (Celery protocol 2 header
   ``id``, else ``correlation_id``) is *ready in queue X*.
3. ``rabbitmqctl close_all_connections`` closes every client connection, the frozen workers'
   included: their unacked messages return to their queues, which is awaited until
   ``list_queues`` shows zero unacked (with a deadline).
4. The queues are read again; a task id not read in step 2 was *unacked* at the end.

So the task id of every message is known, ready and unacked alike, and a task found nowhere is
provably gone from the broker (``lost`` unless it completed). The totals of steps 2 and 4 are
checked against step 1's counts; a difference (a worker that was not frozen, a message
published meanwhile) is reported in :attr:`Inspection.problems`, never hidden.

What it cannot tell: which channel (which worker) held an unacked message, nor whether that
channel's worker was alive (frozen) or already dead: a dead worker's channel is closed by the
broker within milliseconds, so at inspection time "unacked" means held by a live connection.

Side effects, why :func:`inspect` runs only at the end: every message read and requeued gets
the AMQP ``redelivered`` flag, and the closed connections are gone (workers and the dispatching
client must not be used afterwards). For a check *during* a run use :func:`queue_counts`, which
only reads counters.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

import amqp

from celery_chaos.core.broker_state import BrokerState

REQUEUE_DEADLINE = 10.0
# Celery's own broadcast/event queues: exclusive or transient, never a task message.
SYSTEM_QUEUE_MARKERS = (".pidbox", "celeryev.")


class RabbitMQAccess(Protocol):
    """What inspection needs from a broker, whichever backend runs it (the local
    :class:`~celery_chaos.backends.local.rabbitmq_server.RabbitMQServer` is one)."""

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl`` against the node; raise a ``RuntimeError`` on failure."""

    def ctl_json(self, *args: str) -> list[dict]:
        """A ``rabbitmqctl list_*`` command's rows (``--formatter json``)."""

    def connection(self) -> amqp.Connection:
        """A connected AMQP client with full rights on ``/``."""


@dataclass
class QueueCount:
    ready: int
    unacked: int
    consumers: int = 0


@dataclass
class Inspection:
    """What the broker held at the end: per-task locations plus the counts they came from."""

    state: BrokerState
    counts: dict[str, QueueCount] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def is_task_queue(name: str) -> bool:
    return not any(marker in name for marker in SYSTEM_QUEUE_MARKERS)


def queue_counts(server: RabbitMQAccess) -> dict[str, QueueCount]:
    """Ready/unacked/consumer counts of every task queue in ``/`` (no side effect)."""
    rows = server.ctl_json(
        "list_queues", "-p", "/", "name", "messages_ready", "messages_unacknowledged", "consumers"
    )
    return {
        row["name"]: QueueCount(
            int(row["messages_ready"] or 0),
            int(row["messages_unacknowledged"] or 0),
            int(row["consumers"] or 0),
        )
        for row in rows
        if is_task_queue(row["name"])
    }


def may_hold_messages(server: RabbitMQAccess) -> bool:
    """Whether any task queue holds a message, ready or unacked (True if unreachable)."""
    try:
        return any(c.ready or c.unacked for c in queue_counts(server).values())
    except RuntimeError:
        return True


def task_id(message: amqp.Message) -> str | None:
    """The Celery task id of a task message: protocol 2 headers (``task`` and ``id``), else a
    protocol 1 JSON body. Result messages (``rpc://``) carry a task id as correlation id but
    are no task messages, so the correlation id alone is not trusted."""
    headers = message.properties.get("application_headers") or {}
    if headers.get("task") and headers.get("id"):
        return str(headers["id"])
    try:
        body = json.loads(message.body)
    except (ValueError, TypeError):
        return None
    if isinstance(body, dict) and body.get("task") and body.get("id"):
        return str(body["id"])
    return None


def read_held(connection: amqp.Connection, queues: list[str]) -> dict[str, list[str]]:
    """``basic.get`` every ready message of ``queues`` without acking, on channels that keep
    holding them (so none is read twice); closing the connection requeues them all.

    A queue that cannot be read (gone, or exclusive to another connection) is left out of the
    result; the caller reports it."""
    found: dict[str, list[str]] = {}
    for queue in queues:
        channel = connection.channel()
        ids: list[str] = []
        try:
            while (message := channel.basic_get(queue, no_ack=False)) is not None:
                ids.append(task_id(message) or "")
        except amqp.exceptions.ChannelError:
            continue  # the broker closed this channel only; its held messages went back
        found[queue] = ids
    return found


def release_unacked(server: RabbitMQAccess, queues: list[str]) -> dict[str, QueueCount]:
    """Close every client connection and wait until no task queue has unacked messages."""
    server.ctl("close_all_connections", "celery-chaos final broker inspection")
    deadline = time.monotonic() + REQUEUE_DEADLINE
    while True:
        counts = queue_counts(server)
        if not any(counts[q].unacked for q in queues if q in counts):
            return counts
        if time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def inspect(server: RabbitMQAccess) -> Inspection:
    """Snapshot where every task message sits (see the module docstring for the method)."""
    try:
        before = queue_counts(server)
        queues = sorted(before)
        connection = server.connection()
        try:
            ready = read_held(connection, queues)
        finally:
            connection.close()  # the held ready messages go back, in their places
        after = release_unacked(server, queues)
        connection = server.connection()
        try:
            everything = read_held(connection, queues)
        finally:
            connection.close()  # requeues what we read: the broker keeps every message
    except (RuntimeError, OSError, amqp.exceptions.AMQPError):
        return Inspection(BrokerState(reachable=False))
    return _locate(before, after, ready, everything)


def _locate(
    before: dict[str, QueueCount],
    after: dict[str, QueueCount],
    ready: dict[str, list[str]],
    everything: dict[str, list[str]],
) -> Inspection:
    locations: dict[str, list[str]] = defaultdict(list)
    problems = []
    for queue, count in before.items():
        if queue not in ready or queue not in everything:
            problems.append(f"{queue}: could not be read (deleted or exclusive)")
        ready_ids, all_ids = ready.get(queue, []), everything.get(queue, ready.get(queue, []))
        if len(ready_ids) != count.ready:
            problems.append(f"{queue}: {count.ready} ready counted, {len(ready_ids)} read")
        if len(all_ids) != count.ready + count.unacked:
            problems.append(
                f"{queue}: {count.ready}+{count.unacked} counted, {len(all_ids)} read after release"
            )
        if after.get(queue) and after[queue].unacked:
            problems.append(f"{queue}: {after[queue].unacked} still unacked after release")
        unread_ready = list(ready_ids)
        for task in all_ids:
            if not task:
                continue
            if task in unread_ready:
                unread_ready.remove(task)
                locations[task].append(f"queue:{queue}")
            else:
                locations[task].append("unacked")
    return Inspection(BrokerState(reachable=True, locations=dict(locations)), before, problems)


def inspect_live(server: RabbitMQAccess) -> Inspection:
    """Where the *ready* messages sit, without closing anyone's connection (a shared pytest
    environment lives on). Unacknowledged messages cannot be named this way: their count is
    reported as a problem, so the caller knows the reading is partial."""
    try:
        before = queue_counts(server)
        connection = server.connection()
        try:
            ready = read_held(connection, sorted(before))
        finally:
            connection.close()  # requeues what we read
    except (RuntimeError, OSError, amqp.exceptions.AMQPError):
        return Inspection(BrokerState(reachable=False))
    locations: dict[str, list[str]] = defaultdict(list)
    for queue, ids in ready.items():
        for task in filter(None, ids):
            locations[task].append(f"queue:{queue}")
    problems = [
        f"{queue}: {count.unacked} unacked message(s) held by a live connection (not named)"
        for queue, count in before.items()
        if count.unacked
    ]
    return Inspection(BrokerState(reachable=True, locations=dict(locations)), before, problems)
