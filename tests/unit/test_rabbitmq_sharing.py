"""Which scenarios may run in a vhost of a shared RabbitMQ node (pure): only those whose every
act stays inside their vhost."""

from __future__ import annotations

from celery_chaos.placements.sharing import can_share

from tests.unit.inline_scenario import scenario

RABBITMQ = {"kind": "rabbitmq"}
KILL = {"kind": "kill_worker", "when": {"at": 1.0}}


def test_a_rabbitmq_scenario_with_worker_and_connection_faults_shares_a_node() -> None:
    close = {"kind": "close_connection", "when": {"at": 1.0}, "target": {"worker": 0}}
    assert can_share(scenario(broker=RABBITMQ, faults=[KILL, close]))


def test_a_broker_crash_a_node_wide_option_or_a_storm_gets_a_node_of_its_own() -> None:
    restart = {"kind": "restart_broker", "when": {"at": 1.0}}
    assert not can_share(scenario(broker=RABBITMQ, faults=[KILL, restart]))
    assert not can_share(scenario(broker=RABBITMQ | {"consumer_timeout": 5}))
    storm = {
        "duration": 10,
        "tasks": 4,
        "faults": [{"kind": "kill_worker", "every": {"min": 1, "max": 2}}],
    }
    assert not can_share(scenario(broker=RABBITMQ, storm=storm))


def test_redis_never_shares() -> None:
    assert not can_share(scenario())
