"""Inspecting a RabbitMQ broker: which dispatched tasks still have a message in it.

RabbitMQ keeps a message in one of two places: *ready* in a queue, or *unacknowledged* on the
channel it was delivered to (a running ``acks_late`` task, or one prefetched but not started).
An unacked message goes back to ready the moment its channel or connection closes (a killed
worker's socket is closed by the kernel at once: no visibility timeout as on Redis). A message
rejected without requeue or expired goes to the queue's dead-letter exchange if one is set, so
it shows up as ready in that queue, or it is dropped: then it is *gone*.

What this module proves, and how (:func:`inspect`, after the harness froze every worker):

1. ``rabbitmqctl list_queues`` (asks each queue process; not sampled like the management
   plugin's counters) gives per queue the ready and unacked counts.
2. The ready messages of each queue that also has unacked ones are read with ``basic.get``
   (no auto-ack) on a private connection and held, so every ready message is read exactly
   once: its task id (Celery protocol 2 header ``id``, else ``correlation_id``) is *ready in
   queue X*. A queue with nothing unacked is read in step 4 only (all it holds is ready): a
   read is a delivery, and a quorum queue counts it toward its delivery limit.
3. ``close_all_connections`` (through ``erl_call``, else ``rabbitmqctl``) closes every client
   connection of the scenario's vhost, the frozen workers' included: their unacked messages
   return to their queues, which is awaited until ``list_queues`` shows zero unacked (with a
   deadline).
4. The queues are read again; a task id not read in step 2 was *unacked* at the end.

So the task id of every message is known, ready and unacked alike, and a task found nowhere is
provably gone from the broker (``lost`` unless it completed). The totals of steps 2 and 4 are
checked against step 1's counts; a difference (a worker that was not frozen, a message
published meanwhile) is reported in :attr:`Inspection.problems`, never hidden.

Dead letters and delivery limits (measured on RabbitMQ 3.10.8, a real node):

- A quorum queue's delivery limit N (argument ``x-delivery-limit`` or policy ``delivery-limit``;
  with both, the lower one wins: argument 2 + policy 5 gave 3 deliveries, argument 4 + policy 1
  gave 2) allows N + 1 deliveries: the message carries ``x-delivery-count`` 0, 1, ..., N, and
  when the (N + 1)-th delivery is returned (``basic.reject`` with requeue, or its channel or
  connection closed: a killed worker) the count would pass N and the message is dropped, or
  dead-lettered with reason ``delivery_limit`` if the queue has a dead-letter exchange. Limit 0:
  one delivery. Every delivery counts, also one that never reached a task (prefetched, then its
  connection closed), so the history's attempts are a lower bound of RabbitMQ's count.
- A dead-lettered message carries ``x-death`` (newest first: ``reason``, ``queue`` it died in,
  ``count``), and ``x-first-death-reason``/``-queue``; ``x-delivery-count`` is removed.
- Reading a message here (``basic.get``, then returning it) is a delivery too: the inspection
  spends one delivery of each message it reads (two for a ready message in a queue that also
  had unacked ones), so a message at its last allowed delivery may be dropped or dead-lettered
  by the inspection itself; its location is the one read first, and the count check below
  reports the difference.

:func:`inspect` reads ``list_queues ... arguments policy type`` and the policies
(``list_policies``, only when a queue has one) to give each quorum queue's effective limit
(:attr:`BrokerState.delivery_limits`). A ready message with ``x-death`` in a queue that no
worker consumes (no consumer at step 1) is located ``dead_letter:<queue>:<reason>:<died in>``:
parked, nothing runs it unless someone moves it back. Not so in a queue whose messages leave by
themselves (a message TTL and a dead-letter exchange: a retry "waiting room"), nor in a queue a
worker consumes: there it is ready work like any other.

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
from typing import Any, Protocol

import amqp

from celery_chaos.brokers import rabbitmq_erl
from celery_chaos.brokers.rabbitmq_queues import QueueCount, delivery_limits, parking_queues
from celery_chaos.core.broker_state import BrokerState, dead_letter_location

REQUEUE_DEADLINE = 10.0
CLOSE_REASON = "celery-chaos final broker inspection"
# Celery's own broadcast/event queues: exclusive or transient, never a task message.
SYSTEM_QUEUE_MARKERS = (".pidbox", "celeryev.")


class RabbitMQAccess(Protocol):
    """What inspection needs from a node, whichever placement runs it (a local node, a
    container), and the virtual host the scenario's clients use (``/`` on a node of its own; a
    vhost of its own on a shared node, :mod:`~celery_chaos.placements.local.rabbitmq_shared`)."""

    vhost: str

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl`` against the node; raise a ``RuntimeError`` on failure."""

    def connection(self) -> amqp.Connection:
        """A connected AMQP client with full rights on :attr:`vhost`."""


@dataclass
class Inspection:
    """What the broker held at the end: per-task locations plus the counts they came from."""

    state: BrokerState
    counts: dict[str, QueueCount] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def ctl_rows(server: RabbitMQAccess, *args: str) -> list[dict[str, Any]]:
    """A ``rabbitmqctl list_*`` command's rows, as dicts (``--formatter json``)."""
    return json.loads(server.ctl(*args, "--formatter", "json") or "[]")


def ctl_failure(args: tuple[str, ...], stdout: str, stderr: str) -> str:
    """The one line that says why a ``rabbitmqctl`` command failed."""
    detail = (stderr or stdout).strip().splitlines()[:1] or ["(no output)"]
    return f"rabbitmqctl {args[0]} failed: {detail[0]}"


def is_task_queue(name: str) -> bool:
    return not any(marker in name for marker in SYSTEM_QUEUE_MARKERS)


COUNT_COLUMNS = ("messages_ready", "messages_unacknowledged", "consumers", "type", "arguments")


def queue_counts(server: RabbitMQAccess) -> dict[str, QueueCount]:
    """Ready/unacked/consumer counts, type, arguments and policy of every task queue in the
    access's vhost (no side effect; one ``erl_call``, else one ``rabbitmqctl`` call)."""
    columns = ("name", *COUNT_COLUMNS, "policy")
    rows = rabbitmq_erl.queue_rows(server, server.vhost, columns)
    if rows is None:
        rows = ctl_rows(server, "list_queues", "-p", server.vhost, *columns)
    return {
        row["name"]: QueueCount(
            int(row["messages_ready"] or 0),
            int(row["messages_unacknowledged"] or 0),
            int(row["consumers"] or 0),
            str(row.get("type") or "classic"),
            {arg[0]: arg[-1] for arg in row.get("arguments") or [] if arg},
            str(row.get("policy") or ""),
        )
        for row in rows
        if is_task_queue(row["name"])
    }


def held_messages(server: RabbitMQAccess, parked: frozenset[str] = frozenset()) -> int | None:
    """How many messages the task queues hold, ready or unacked (None if unreachable). The
    ``parked`` queues (dead-letter queues the scenario declared) count only while a worker
    consumes them: a dead-lettered message never moves, so waiting for it would never end."""
    try:
        counts = queue_counts(server)
    except RuntimeError:
        return None
    return sum(c.ready + c.unacked for q, c in counts.items() if q not in parked or c.consumers)


def policy_definitions(server: RabbitMQAccess, counts: dict[str, QueueCount]) -> dict[str, dict]:
    """The definition of every policy that applies to a task queue (no call when none does)."""
    if not any(count.policy for count in counts.values()):
        return {}
    rows = ctl_rows(server, "list_policies", "-p", server.vhost)
    return {row["name"]: _json_object(row.get("definition")) for row in rows}


def _json_object(value: Any) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def death(message: amqp.Message) -> tuple[str, str] | None:
    """(reason, queue it died in) of a dead-lettered message, from its newest ``x-death``."""
    headers = message.properties.get("application_headers") or {}
    deaths = headers.get("x-death") or []
    newest = deaths[0] if deaths and isinstance(deaths[0], dict) else {}
    reason = newest.get("reason") or headers.get("x-first-death-reason")
    if not reason:
        return None
    return str(reason), str(newest.get("queue") or headers.get("x-first-death-queue") or "?")


def flush_metadata_log(server: RabbitMQAccess) -> str:
    """Have the node write its cached metadata decisions to disk, as a node whose queues were
    declared a while ago already has. Measured on RabbitMQ 3.10 (OTP 25): mnesia logs the
    "committed" decision of a durable queue's declaration asynchronously and disk_log caches it
    for up to 2 s, so a SIGKILL in that window loses the queue and its messages at recovery (4
    of 54 crashes 0.02-0.5 s after a declare; none of 24 after this flush). Returns why the
    flush failed, or "" (milliseconds through ``erl_call``; 0.6-2 s through a CLI VM)."""
    if rabbitmq_erl.sync_metadata_log(server):
        return ""
    try:
        server.ctl("eval", "disk_log:sync(latest_log).")
    except RuntimeError as error:
        return f"RabbitMQ metadata log not flushed: {error}"
    return ""


def declare_queues(server: RabbitMQAccess, queues: dict[str, dict[str, Any]]) -> None:
    """Declare the scenario's extra queues (e.g. a dead-letter queue no worker consumes): Celery
    declares only the queues it consumes or publishes to, and RabbitMQ drops a dead letter
    routed to no queue. Idempotent; a queue declared before with other arguments raises."""
    if not queues:
        return
    connection = server.connection()
    try:
        channel = connection.channel()
        for name, spec in queues.items():
            channel.queue_declare(
                name,
                durable=spec.get("durable", True),
                auto_delete=False,
                arguments=spec.get("arguments") or {},
            )
    finally:
        connection.close()


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


Deaths = dict[tuple[str, str], tuple[str, str]]  # (queue, task id) -> (reason, died in)


def read_held(
    connection: amqp.Connection, queues: list[str], deaths: Deaths | None = None
) -> dict[str, list[str]]:
    """``basic.get`` every ready message of ``queues`` without acking, on channels that keep
    holding them (so none is read twice); closing the connection requeues them all. The
    dead-lettered ones are noted in ``deaths``.

    A queue that cannot be read (gone, or exclusive to another connection) is left out of the
    result; the caller reports it."""
    found: dict[str, list[str]] = {}
    for queue in queues:
        channel = connection.channel()
        ids: list[str] = []
        try:
            while (message := channel.basic_get(queue, no_ack=False)) is not None:
                ids.append(task_id(message) or "")
                died = death(message)
                if deaths is not None and died and ids[-1]:
                    deaths[(queue, ids[-1])] = died
        except amqp.exceptions.ChannelError:
            continue  # the broker closed this channel only; its held messages went back
        found[queue] = ids
    return found


def release_unacked(server: RabbitMQAccess, queues: list[str]) -> dict[str, QueueCount]:
    """Close every client connection of the vhost and wait until no task queue has unacked
    messages."""
    if not rabbitmq_erl.close_all_connections(server, server.vhost, CLOSE_REASON):
        server.ctl("close_all_connections", "-p", server.vhost, CLOSE_REASON)
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
    deaths: Deaths = {}
    try:
        before = queue_counts(server)
        policies = policy_definitions(server, before)
        queues = sorted(before)
        holding = [queue for queue in queues if before[queue].unacked]
        connection = server.connection()
        try:
            ready = read_held(connection, holding, deaths)
        finally:
            connection.close()  # the held ready messages go back, in their places
        after = release_unacked(server, queues)
        connection = server.connection()
        try:
            everything = read_held(connection, queues, deaths)
        finally:
            connection.close()  # requeues what we read: the broker keeps every message
    except (RuntimeError, OSError, amqp.exceptions.AMQPError):
        return Inspection(BrokerState(reachable=False))
    for queue in set(queues) - set(holding):  # nothing unacked: all it holds was ready
        if queue in everything:
            ready[queue] = everything[queue]
    return _locate(before, after, ready, everything, deaths, policies)


def _ready_location(queue: str, task: str, deaths: Deaths, parking: set[str]) -> str:
    """``queue:<name>``, or ``dead_letter:...`` for a dead letter parked where it stays."""
    died = deaths.get((queue, task))
    if died is not None and queue in parking:
        return dead_letter_location(queue, *died)
    return f"queue:{queue}"


def _locate(
    before: dict[str, QueueCount],
    after: dict[str, QueueCount],
    ready: dict[str, list[str]],
    everything: dict[str, list[str]],
    deaths: Deaths | None = None,
    policies: dict[str, dict] | None = None,
) -> Inspection:
    locations: dict[str, list[str]] = defaultdict(list)
    problems = []
    deaths, policies = deaths or {}, policies or {}
    parking = parking_queues(before, policies)
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
                locations[task].append(_ready_location(queue, task, deaths, parking))
            else:
                locations[task].append("unacked")
    state = BrokerState(True, dict(locations), delivery_limits(before, policies))
    return Inspection(state, before, problems)


def inspect_live(server: RabbitMQAccess) -> Inspection:
    """Where the *ready* messages sit, without closing anyone's connection (a shared pytest
    environment lives on). Unacknowledged messages cannot be named this way: their count is
    reported as a problem, so the caller knows the reading is partial."""
    deaths: Deaths = {}
    try:
        before = queue_counts(server)
        policies = policy_definitions(server, before)
        connection = server.connection()
        try:
            ready = read_held(connection, sorted(before), deaths)
        finally:
            connection.close()  # requeues what we read
    except (RuntimeError, OSError, amqp.exceptions.AMQPError):
        return Inspection(BrokerState(reachable=False))
    parking = parking_queues(before, policies)
    locations: dict[str, list[str]] = defaultdict(list)
    for queue, ids in ready.items():
        for task in filter(None, ids):
            locations[task].append(_ready_location(queue, task, deaths, parking))
    problems = [
        f"{queue}: {count.unacked} unacked message(s) held by a live connection (not named)"
        for queue, count in before.items()
        if count.unacked
    ]
    state = BrokerState(True, dict(locations), delivery_limits(before, policies))
    return Inspection(state, before, problems)
