"""``broker.declare_queues``: the harness declares the scenario's extra RabbitMQ queues once the
broker is up and again after ``restart_broker`` (a non-durable queue does not survive one);
nothing is declared on Redis. The broker here is a recorder of declare calls: what RabbitMQ does
with them is proven on a real node (tests/integration/test_rabbitmq_server.py and the
rabbitmq-quorum-dead-letter scenario)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from celery_chaos.backends import rabbitmq_broker
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.run import faults

DEAD = {"celery.dead": {"durable": False, "arguments": {"x-queue-mode": "lazy"}}}
WORKLOAD = [{"task": "sample_tasks.tasks.work"}]


def backend(broker: dict[str, Any]) -> SimpleNamespace:
    data = {"name": "d", "description": "d", "broker": broker, "workload": WORKLOAD, "expect": {}}
    scenario = parse_scenario(data, "inline")
    stand_in = SimpleNamespace(scenario=scenario, restart_broker=lambda: "restarted")
    stand_in.rabbitmq = lambda: "node"
    return stand_in


def test_the_restart_handler_declares_the_queues_again(monkeypatch) -> None:
    declared: list[tuple[Any, dict]] = []
    monkeypatch.setattr(rabbitmq_broker, "declare_queues", lambda *call: declared.append(call))
    rabbit = backend({"kind": "rabbitmq", "declare_queues": DEAD})
    fault = rabbit.scenario.model_validate(
        rabbit.scenario.model_dump() | {"faults": [{"kind": "restart_broker", "when": {"at": 0}}]}
    ).faults[0]

    outcome = faults.apply(rabbit, fault, faults.Target(None, None), lambda: None)

    assert (outcome.status, outcome.detail) == ("injected", "restarted")
    assert declared == [("node", DEAD)]


def test_nothing_is_declared_without_declare_queues(monkeypatch) -> None:
    declared: list[tuple[Any, dict]] = []
    monkeypatch.setattr(rabbitmq_broker, "declare_queues", lambda *call: declared.append(call))
    faults.declare_broker_queues(backend({"kind": "rabbitmq"}))
    faults.declare_broker_queues(backend({"kind": "redis"}))
    assert declared == []
