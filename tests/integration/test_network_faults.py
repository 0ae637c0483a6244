"""Network faults on the local backend: the harness's own TCP proxy between each worker and the
broker (no Docker, no root). Each scenario kills nothing; real workers lose their broker
connection while their tasks keep running, and the verdicts come from the recorded history."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from celery_chaos.core.conclusion import PASSED
from celery_chaos.placements.local.redis_server import RedisServer
from celery_chaos.placements.proxy import ProxyHub

from tests.integration.scenario_support import run

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]


@pytest.fixture
def broker(tmp_path: Path):
    server = RedisServer("broker", tmp_path)
    server.start()
    hub = ProxyHub()
    yield server, hub.open("w0", ("127.0.0.1", server.port))
    hub.close()
    server.stop()


def test_proxy_faults_on_a_real_redis(broker) -> None:
    server, proxy = broker
    client = redis.Redis(port=proxy.port, password=server.password, socket_timeout=0.5)
    assert client.ping()
    proxy.partition()
    with pytest.raises(redis.TimeoutError):  # the connection hangs: a blackhole, not a refusal
        client.ping()
    proxy.heal()
    fresh = redis.Redis(port=proxy.port, password=server.password, socket_timeout=0.5)
    assert fresh.ping()
    connection = fresh.connection_pool.get_connection()
    assert "reset 1 open" in proxy.drop_connections()
    with pytest.raises(redis.ConnectionError):  # reset by peer: the old socket is gone
        connection.send_command("PING")
        connection.read_response()
    fresh.connection_pool.release(connection)
    proxy.add_latency(0.2, duration=60)
    began = time.monotonic()
    fresh.ping()
    assert time.monotonic() - began >= 0.4  # both directions held
    proxy.add_latency(0.2, duration=0.01)
    time.sleep(0.1)
    began = time.monotonic()
    fresh.ping()
    assert time.monotonic() - began < 0.2  # the duration ended


def drains(hub: ProxyHub, within: float = 5.0) -> bool:
    """Whether the proxies hold no bytes in flight within ``within`` seconds."""
    deadline = time.monotonic() + within
    while hub.holds_data() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not hub.holds_data()


def test_bandwidth_paces_and_in_flight_bytes_are_seen(broker) -> None:
    """A bandwidth limit paces the bytes (a 2,000-byte write at 1,000 bytes/s takes about 2 s),
    and while a partition holds a command the hub reports bytes in flight (what keeps a run from
    ending while a message may be in transit). The proxy's own cost is a benchmark figure
    (benchmarks/storm_bench.py --only-proxy), not asserted here."""
    server, proxy = broker
    client = redis.Redis(port=proxy.port, password=server.password, socket_timeout=10)
    assert client.ping()
    assert drains(proxy.hub)  # the reply arrived; the proxy's pump lets go of it right after
    proxy.limit_bandwidth(1000, duration=60)
    began = time.monotonic()
    client.set("blob", "x" * 2000)
    assert time.monotonic() - began >= 1.5
    proxy.limit_bandwidth(1000, duration=0.01)
    time.sleep(0.1)
    assert proxy.rate is None  # the duration ended
    held = redis.Redis(port=proxy.port, password=server.password, socket_timeout=0.5)
    assert held.ping()  # connected before the partition
    proxy.partition()
    with pytest.raises(redis.TimeoutError):
        held.ping()  # its PING is held by the partition, in flight on an open link
    assert proxy.hub.holds_data()
    proxy.heal()
    assert drains(proxy.hub)


def test_partition_mid_task_duplicates_an_acks_late_task(tmp_path: Path) -> None:
    result = run("21-ack-late-partition-mid-task.yaml", tmp_path)
    task = result.verdicts.tasks[0]
    first, second = task.attempts
    assert first.state == second.state == "SUCCESS"  # the cut-off worker's run went on
    assert first.worker != second.worker  # the healthy worker restored it and ran it again
    assert task.outcome == "duplicate_executions"
    assert result.status == PASSED


def test_dropped_connections_rerun_running_acks_late_tasks(tmp_path: Path) -> None:
    result = run("22a-ack-late-drop-connections-mid-task.yaml", tmp_path)
    for task in result.verdicts.tasks:
        assert [a.state for a in task.attempts] == ["SUCCESS", "SUCCESS"]
        assert task.attempts[0].worker == task.attempts[1].worker  # no process died
    assert result.verdicts.counts["worker_crashes"] == 0
    assert result.status == PASSED


def test_cancel_on_connection_loss_runs_each_task_once_more(tmp_path: Path) -> None:
    result = run("22b-ack-late-drop-connections-cancel-on-loss.yaml", tmp_path)
    for task in result.verdicts.tasks:
        assert task.outcome == "recovered"
        assert [a.state for a in task.attempts][-1] == "SUCCESS"
    assert result.status == PASSED


def test_latency_slows_but_loses_nothing(tmp_path: Path) -> None:
    result = run("23-broker-latency.yaml", tmp_path)
    fault = next(e for e in result.verdicts.faults if e["kind"] == "latency")
    assert fault["status"] == "injected"
    assert result.verdicts.counts["ok"] == 6
    assert result.status == PASSED


def test_reply_lost_in_flight_loses_an_acks_late_task(tmp_path: Path) -> None:
    result = run("26-ack-late-reply-lost-in-flight.yaml", tmp_path)
    control, lost = result.verdicts.tasks
    assert control.outcome == "ok"
    assert lost.outcome == "lost" and lost.attempts == [] and lost.in_broker == []
    assert all(f["status"] == "injected" for f in result.verdicts.faults)  # no process died
    assert result.verdicts.counts["worker_crashes"] == 0
    assert result.status == PASSED


CHAOS_ENV_RESET = """
import pytest
from celery_chaos.testing import assert_verdicts


@pytest.mark.chaos(
    celery={"task_acks_late": True, "task_reject_on_worker_lost": True},
    workers={"count": 1, "concurrency": 2},
    faults=["drop_connections"],
)
def test_reset_mid_task_runs_it_twice(chaos_env):
    kwargs = {"doc_id": "net", "steps": 6, "step_seconds": 0.1}
    task = chaos_env.dispatch("sample_tasks.tasks.ingest_document", kwargs=kwargs)
    chaos_env.fault("drop_connections", task=task, checkpoint="step-2")
    assert chaos_env.wait_quiescent(timeout=40)
    assert_verdicts(chaos_env.verdicts(), duplicate_executions=1, lost=0)
"""


def test_chaos_env_drops_connections(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_net=CHAOS_ENV_RESET)
    result = pytester.runpytest_subprocess("--chaos-report-dir", "out", timeout=240)
    result.assert_outcomes(passed=1)


def test_bandwidth_limit_slows_delivery_and_loses_nothing(tmp_path: Path) -> None:
    """The throttled link holds each message for seconds after Redis handed it over; the run
    waits for the bytes in flight instead of calling the tasks lost."""
    result = run("27-broker-bandwidth-starved.yaml", tmp_path)
    assert result.status == PASSED, result.reason
    history = [json.loads(line) for line in (result.report_dir / "history.jsonl").open()]
    dispatched = min(e["ts"] for e in history if e["type"] == "dispatch")
    starts = [e["ts"] - dispatched for e in history if e["type"] == "attempt_start"]
    assert len(starts) == 2 and min(starts) > 2.0  # 500 bytes/s: seconds per message
    assert [f["status"] for f in result.verdicts.faults] == ["injected"]
