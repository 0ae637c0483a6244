"""The RabbitMQ-only scenarios on a real ``rabbitmq-server`` (no mocks), the dead-letter and
redelivery checks, and the command line's ``--broker`` carrying the kind into the run and its
report. The default suite on RabbitMQ is in test_rabbitmq_default_{1,2,3,4}.py (a quarter each,
so four processes run it side by side); what they share is rabbitmq_suite_support.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.brokers.rabbitmq_inspection import ctl_rows
from celery_chaos.placements.local.rabbitmq_shared import SharedRabbitMQ
from celery_chaos.run.runner import RunOptions, run_scenario

from tests.integration.rabbitmq_suite_support import (
    RABBITMQ_ONLY,
    REDIS_ONLY,
    run_on_rabbitmq,
    skip_without_rabbitmq,
)

skip_without_rabbitmq()
pytestmark = pytest.mark.integration


def test_only_scenarios_about_redis_transport_are_left_on_redis() -> None:
    """The exclusions stay few and deliberate: visibility timeouts, the restore sweep, BRPOP,
    and Redis Sentinel's failover (a Redis topology)."""
    assert {
        "ack-late-partition-mid-task",
        "ack-late-reply-lost-in-flight",
        "chord-results-on-restarted-broker",
        "eventlet-kill-is-whole-worker",
        "gevent-kill-is-whole-worker",
        "gevent-kill-polling-interval-restores",
        "sentinel-failover-defaults",
        "sentinel-failover-ack-late-crashes-worker",
    } == REDIS_ONLY


DEAD_LETTER = "rabbitmq-quorum-dead-letter"  # run by its own test below, with more checks


@pytest.mark.parametrize("name", sorted(set(RABBITMQ_ONLY) - {DEAD_LETTER}))
def test_rabbitmq_scenarios(name: str, tmp_path: Path, shared_rabbitmq: SharedRabbitMQ) -> None:
    run_on_rabbitmq(name, tmp_path, shared_rabbitmq)


def test_a_dead_lettered_poison_message_sits_in_the_dead_letter_queue(
    tmp_path: Path, shared_rabbitmq: SharedRabbitMQ
) -> None:
    """The scenario passes (``dead_lettered: 1``), the message really is in celery.dead per
    rabbitmqctl once the run is over (workers frozen, before teardown), and the run ended
    quiescent: the quiet check did not wait for the parked message until the deadline."""
    queues: dict[str, int] = {}

    def count_messages(backend: Any) -> None:
        access = backend.broker.access
        rows = ctl_rows(access, "list_queues", "-p", access.vhost, "name", "messages")
        queues.update({row["name"]: int(row["messages"]) for row in rows})

    report = run_on_rabbitmq(DEAD_LETTER, tmp_path, shared_rabbitmq, on_finish=count_messages)
    (task,) = report["tasks"]
    assert task["in_broker"] == ["dead_letter:celery.dead:delivery_limit:celery"]
    assert len(task["attempts"]) == 3  # x-delivery-limit 2: three deliveries, then dead-lettered
    assert {a["queue"] for a in task["attempts"]} == {"celery"}
    assert queues["celery.dead"] == 1 and queues["celery"] == 0
    assert report["end_reason"] == "quiescent"


def test_a_loop_a_quorum_queue_can_end_runs_until_the_broker_ends_it(
    tmp_path: Path, shared_rabbitmq: SharedRabbitMQ
) -> None:
    """The poison message on a quorum queue with x-delivery-limit 4 and redelivery_threshold 1:
    the loop is proven after 3 deliveries, but RabbitMQ drops the message after the 5th, so the
    run may not end on the loop (``Broker.may_end_loops``): it goes on until the broker ends it,
    and the task is lost at its delivery limit, not pending."""
    base = RABBITMQ_ONLY["rabbitmq-quorum-delivery-limit"]
    queues = {"celery": {"queue_arguments": {"x-queue-type": "quorum", "x-delivery-limit": 4}}}
    scenario = base.model_copy(
        update={"celery": base.celery | {"task_queues": queues}, "redelivery_threshold": 1}
    )
    options = RunOptions(report_dir=tmp_path, backend_options={"shared_rabbitmq": shared_rabbitmq})
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    assert result.verdicts is not None, result.reason
    (task,) = result.verdicts.tasks
    assert len(task.attempts) == 5 and task.outcome == "lost", (task.outcome, task.attempts)
    assert {"redelivery_loop", "dropped_at_delivery_limit"} <= set(task.labels)
    assert result.end_reason == "quiescent"


def test_killed_worker_is_redelivered_at_once_on_rabbitmq(
    tmp_path: Path, shared_rabbitmq: SharedRabbitMQ
) -> None:
    """Redis's one-hour visibility timeout leaves these tasks pending; RabbitMQ requeues them
    when the killed worker's socket closes, and the replacement reruns both."""
    report = run_on_rabbitmq("ack-late-kill-worker-default-visibility", tmp_path, shared_rabbitmq)
    assert report["verdicts"]["recovered"] == 2 and report["verdicts"]["pending"] == 0
    assert all(len(task["attempts"]) == 2 for task in report["tasks"])


def test_cli_broker_option_runs_the_suite_scenario_on_rabbitmq(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "run", "--broker", "rabbitmq"]
        + ["--only", "defaults-child-kill", "--report-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(next(tmp_path.glob("*/defaults-child-kill/result.json")).read_text())
    assert result["versions"]["broker"].startswith("rabbitmq ")
    assert not list(tmp_path.glob("*/defaults-child-kill/logs/broker/mnesia"))
    assert not list(tmp_path.glob("*/defaults-child-kill/logs/broker/rabbitmq.conf"))
