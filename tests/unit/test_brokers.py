"""The brokers' own logic, apart from any server: which connections RabbitMQ is told to close,
how often the quiet check asks the node, a doubtful reading made unreachable, and the refusal of
close_connection on a broker that cannot carry it out (before anything starts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.brokers import BROKERS, RabbitMQBroker, RedisBroker, kinds_that_close_connections
from celery_chaos.brokers import rabbitmq_inspection as inspection
from celery_chaos.core.broker_state import BrokerState
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.base import Unsupported
from celery_chaos.placements.local.placement import LocalPlacement

from tests.unit.inline_scenario import scenario


class Node:
    """A RabbitMQ node as inspection reaches it (``RabbitMQAccess``): canned ``rabbitmqctl``
    answers, every call recorded."""

    vhost = "/"

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def ctl(self, *args: str) -> str:
        self.calls.append(args)
        return self.answers.get(args[0], "")

    def connection(self) -> Any:
        raise OSError("no AMQP in a unit test")


def queue_row(name: str, ready: int, consumers: int) -> dict[str, Any]:
    return {
        "name": name,
        "messages_ready": ready,
        "messages_unacknowledged": 0,
        "consumers": consumers,
        "type": "classic",
        "arguments": [],
        "policy": "",
    }


def rabbit(node: Node, **spec: Any) -> RabbitMQBroker:
    return RabbitMQBroker(BrokerSpec(kind="rabbitmq", **spec), node, "amqp://u:p@h:1//")


def test_rabbitmq_closes_exactly_the_connections_whose_column_matches_in_its_vhost() -> None:
    rows = ["<n.1.2.3>\t/\t40001", "<n.1.2.4>\t/\t40002", "<n.1.2.5>\t/\t5672", "not a row"]
    rows.append("<n.1.2.6>\tchaos-other\t40001")  # another scenario's vhost on a shared node
    node = Node({"list_connections": "\n".join(rows) + "\n"})
    closed = rabbit(node).close_connections("peer_port", {"40001", "5672"}, "why")
    assert closed == ["<n.1.2.3>", "<n.1.2.5>"]
    assert node.calls == [
        ("list_connections", "pid", "vhost", "peer_port"),
        ("close_connection", "<n.1.2.3>", "why"),
        ("close_connection", "<n.1.2.5>", "why"),
    ]


def test_the_quiet_check_counts_once_per_interval_and_ignores_a_parked_dead_letter() -> None:
    rows = [queue_row("celery", 0, 1), queue_row("dlq", 1, 0)]  # dlq: declared, not consumed
    node = Node({"list_queues": json.dumps(rows)})
    broker = rabbit(node, declare_queues={"dlq": {}})
    assert broker.occupancy({"t1"}) == (False, False)
    assert broker.occupancy({"t1"}) == (False, False)
    assert len(node.calls) == 1  # the second answer is the first one, reused
    node.answers["list_queues"] = json.dumps([queue_row("celery", 1, 1)])
    broker._held = (0.0, False)  # as if the interval had passed
    assert broker.occupancy({"t1"}) == (True, True)


def test_an_unreachable_node_may_hold_anything() -> None:
    class Down(Node):
        def ctl(self, *args: str) -> str:
            raise RuntimeError("node down")

    assert rabbit(Down({})).occupancy(set()) == (True, True)
    assert rabbit(Down({})).answers() is False


def test_a_reading_that_does_not_add_up_is_logged_and_unreachable(monkeypatch: Any) -> None:
    state = BrokerState(True, {"t1": ["queue:celery"]})
    found = inspection.Inspection(state, problems=["celery: 2 ready counted, 1 read"])
    monkeypatch.setattr(inspection, "inspect", lambda access: found)
    lines: list[str] = []
    broker = RabbitMQBroker(BrokerSpec(kind="rabbitmq"), Node({}), "amqp://h//", log=lines.append)
    read = broker.state()
    assert read.reachable is False and read.locations == state.locations
    assert lines == ["   broker inspection: celery: 2 ready counted, 1 read"]


def test_a_refused_redis_answers_no_and_may_hold_anything() -> None:
    broker = RedisBroker(BrokerSpec(), "redis://:pw@127.0.0.1:1/0")
    assert broker.worker_url == broker.url
    assert broker.answers() is False
    assert broker.occupancy({"t1"}) == (True, True)


def test_the_broker_table_names_every_kind_once() -> None:
    assert {kind: broker.kind for kind, broker in BROKERS.items()} == {
        "redis": "redis",
        "rabbitmq": "rabbitmq",
    }
    assert kinds_that_close_connections() == ["rabbitmq"]


def test_close_connection_on_a_redis_broker_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    fault = {"kind": "close_connection", "when": {"task": 0, "checkpoint": "render-1"}}
    placement = LocalPlacement(scenario(faults=[fault]), tmp_path)
    with pytest.raises(Unsupported, match=r"^close_connection: needs broker.kind rabbitmq$"):
        placement.check_runnable()
