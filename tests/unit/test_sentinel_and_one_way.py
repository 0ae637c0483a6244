"""Pure and socket-level checks of the Sentinel topology's options and the proxy's one-direction
hold (real sockets through the real proxy; the real-worker effects are integration tests)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.brokers.sentinel import MASTER_NAME, SentinelBroker
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.base import Unsupported
from celery_chaos.placements.proxy import ProxyHub

DEADLINE = 10.0


def scenario(**spec: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "description": "unit",
        "workload": [{"task": "sample_tasks.tasks.work"}],
        **spec,
    }


def refusal(**spec: Any) -> str:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(scenario(**spec), "t.yaml")
    message = str(raised.value)
    assert "\n" not in message.strip()  # one line
    return message


def test_failover_needs_the_sentinel_topology() -> None:
    message = refusal(faults=[{"kind": "failover", "when": {"at": 1}}])
    assert "faults[0].kind: failover needs broker.topology sentinel" in message


def test_sentinel_is_a_redis_topology() -> None:
    message = refusal(broker={"kind": "rabbitmq", "topology": "sentinel"})
    assert "broker" in message and "topology: sentinel is a Redis topology" in message


def test_options_are_refused_on_other_kinds_and_bad_values() -> None:
    sentinel = {"kind": "redis", "topology": "sentinel"}
    assert "how" in refusal(
        broker=sentinel, faults=[{"kind": "failover", "how": "x", "when": {"at": 1}}]
    )
    one_way = {"kind": "partition_one_way", "direction": "up", "when": {"at": 1}}
    assert "direction" in refusal(faults=[one_way])
    on_kill = {"kind": "kill_worker", "direction": "to_broker", "when": {"at": 1}}
    assert "direction: not an option of kind kill_worker" in refusal(faults=[on_kill])


def test_sentinel_broker_adds_its_transport_options_to_the_scenarios() -> None:
    broker = SentinelBroker.at(BrokerSpec(topology="sentinel"), "pw", "spw", [1, 2, 3])
    assert broker.url == ";".join(f"sentinel://:pw@127.0.0.1:{p}/0" for p in (1, 2, 3))
    settings = {"task_acks_late": True, "broker_transport_options": {"visibility_timeout": 5}}
    merged = broker.celery_settings(settings)
    assert merged["broker_transport_options"] == {
        "visibility_timeout": 5,
        "master_name": MASTER_NAME,
        "sentinel_kwargs": {"password": "spw"},  # Kombu gives the URL's password to the master
    }
    assert settings["broker_transport_options"] == {"visibility_timeout": 5}  # not changed
    assert merged["task_acks_late"] is True


@pytest.fixture
def echo() -> Iterator[tuple[int, list[bytes]]]:
    """An upstream that records what it receives and echoes it back."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn, contextlib.suppress(OSError):  # the hub's close resets the connection
            while data := conn.recv(100):
                received.append(data)
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    server.close()


def wait_until(condition: Any) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        time.sleep(0.01)


@pytest.mark.parametrize("direction", ["to_worker", "to_broker"])
def test_one_way_hold_holds_only_its_direction(
    echo: tuple[int, list[bytes]], direction: str
) -> None:
    port, received = echo
    hub = ProxyHub()
    try:
        proxy = hub.open("w0", ("127.0.0.1", port))
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=DEADLINE)
        client.sendall(b"a")
        assert client.recv(1) == b"a"  # flows both ways before the hold
        detail = proxy.partition(None, direction)
        assert f"held {direction.replace('_', ' ')}" in detail
        client.sendall(b"b")
        wait_until(lambda: proxy.in_flight == 1)  # one byte held, in the chosen direction
        # to_worker: the upstream got "b" (the command arrived) and its echo is what is held;
        # to_broker: "b" itself is held, the upstream never saw it.
        assert received == ([b"a", b"b"] if direction == "to_worker" else [b"a"])
        proxy.heal()
        assert client.recv(1) == b"b"  # the held byte flows on
        assert received == [b"a", b"b"]
        client.close()
    finally:
        hub.close()


def sentinel_scenario(*faults: dict[str, Any]) -> Any:
    data = scenario(broker={"kind": "redis", "topology": "sentinel"}, faults=list(faults))
    return parse_scenario(data, "t.yaml")


def test_docker_refuses_proxied_faults_on_a_sentinel_topology(tmp_path: Path) -> None:
    """Checked before the engine is asked: no Docker needed."""
    from celery_chaos.placements.docker.placement import DockerPlacement

    one_way = {"kind": "partition_one_way", "when": {"at": 1}}
    with pytest.raises(Unsupported, match="network faults need one broker address"):
        DockerPlacement(sentinel_scenario(one_way), tmp_path).check_runnable()


def test_local_refuses_proxied_faults_on_a_sentinel_topology(tmp_path: Path) -> None:
    from celery_chaos.placements.local.placement import LocalPlacement

    one_way = {"kind": "partition_one_way", "when": {"at": 1}}
    placement = LocalPlacement(sentinel_scenario(one_way), tmp_path)
    with pytest.raises(Unsupported, match="network faults need one broker address"):
        placement.check_runnable()
    placement.state.discard()
