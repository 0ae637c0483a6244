"""Scenarios in vhosts of one shared ``rabbitmq-server`` node (placements/local/rabbitmq_shared.py):
each vhost sees only its own queues and connections (the final inspection closes one vhost's
connections, not another's), and nothing of the shared node outlives its suite, even when the
harness is SIGKILLed. That a scenario gives the same verdicts both ways is
benchmarks/rabbitmq_suite_shared.py's (its smoke run is in test_benchmarks_smoke.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import amqp
import psutil
import pytest
from celery_chaos.brokers import rabbitmq_inspection as inspection
from celery_chaos.placements.local.rabbitmq_shared import SharedRabbitMQ
from celery_chaos.placements.local.state import STATE_DIR_ENV, RunState

from tests.integration.rabbitmq_suite_support import outlived, skip_without_rabbitmq
from tests.integration.scenario_support import wait_for_line
from tests.integration.test_harness_death import GONE_DEADLINE, ROOT, write_scenario

skip_without_rabbitmq()
pytestmark = pytest.mark.integration


def publish_one(connection: amqp.Connection) -> None:
    channel = connection.channel()
    channel.queue_declare("celery", durable=True, auto_delete=False)
    channel.basic_publish(amqp.Message(b"task"), routing_key="celery")


def test_vhosts_of_one_node_see_only_their_own_queues_and_connections(tmp_path: Path) -> None:
    with SharedRabbitMQ(tmp_path / "node") as shared:
        one, two = shared.lease("one", tmp_path / "one"), shared.lease("two", tmp_path / "two")
        one.start()
        two.start()
        assert one.node is two.node and one.vhost != two.vhost
        for lease in (one, two):
            connection = lease.connection()
            publish_one(connection)
            connection.close()
        consumer = two.connection()  # holds two's message unacked
        consumer.channel().basic_get("celery", no_ack=False)
        assert inspection.queue_counts(one)["celery"].ready == 1
        assert inspection.queue_counts(two)["celery"].unacked == 1
        inspection.release_unacked(one, ["celery"])  # the final inspection's close, for one
        consumer.channel().queue_declare("celery", passive=True, durable=True, auto_delete=False)
        assert inspection.queue_counts(two)["celery"].unacked == 1  # two's connection lives on
        consumer.close()
        one.discard()
        assert "chaos-one" not in two.ctl("list_vhosts").split()
        assert (tmp_path / "one" / "broker" / "log").is_dir()  # the run keeps its log lines
        two.discard()
        pids, state_path = shared.node.pids(), shared.state.path
    assert not outlived(pids)
    assert not state_path.exists() and not (tmp_path / "node").exists()


def test_a_killed_harness_leaves_nothing_of_the_shared_node(tmp_path: Path) -> None:
    """SIGKILL mid-task: the node dies with the harness (PDEATHSIG), the shared node's watchdog
    removes its folder and state file, as the run's own watchdog removes the run's."""
    state_dir = tmp_path / "state"
    harness = subprocess.Popen(
        [sys.executable, "-m", "celery_chaos.cli", "run", str(write_scenario(tmp_path)),
         "--broker", "rabbitmq", "--report-dir", str(tmp_path / "reports"), "-v"],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=os.environ | {STATE_DIR_ENV: str(state_dir)},
    )  # fmt: skip
    try:
        wait_for_line(harness, "attempt_start")
        states = [RunState.load(path) for path in state_dir.glob("*.json")]
        (shared,) = [state for state in states if state.run_id.startswith("shared-rabbitmq-")]
        seen = psutil.Process(harness.pid).children(recursive=True)
        harness.send_signal(signal.SIGKILL)
        harness.wait(timeout=60)
    finally:
        if harness.poll() is None:
            harness.kill()
    _, alive = psutil.wait_procs(seen, timeout=GONE_DEADLINE)
    assert alive == [], [(p.pid, p.name()) for p in alive]
    assert shared.groups and all(not group.leader.alive() for group in shared.groups)
    folder = Path(shared.folders[0])
    deadline = time.monotonic() + GONE_DEADLINE
    while (folder.exists() or list(state_dir.glob("*.json"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not folder.exists(), "the shared node's folder is left"
    assert not list(state_dir.glob("*.json")), "a state file is left"
