"""The default suite and the RabbitMQ scenarios on a real ``rabbitmq-server`` (no mocks): every
scenario meets its expectations for the broker it ran on (``expect_when`` where RabbitMQ
differs), and the command line's ``--broker`` carries the kind into the run and its report.

One node per scenario, as a real run starts it (Erlang start-up is 4-12 s under load), so each
test is one scenario: select with ``-k`` when iterating."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery_chaos.brokers.rabbitmq_inspection import ctl_rows
from celery_chaos.core.conclusion import PASSED, failure_message
from celery_chaos.core.scenario import load_suite, with_broker_kind
from celery_chaos.placements.local.rabbitmq_server import (
    OWNER_ENV,
    RabbitMQUnavailable,
    find_rabbitmq,
    owner_marker,
)
from celery_chaos.run.runner import RunOptions, run_scenario

try:
    find_rabbitmq()
except RabbitMQUnavailable as missing:
    pytest.skip(str(missing), allow_module_level=True)

pytestmark = pytest.mark.integration
SUITE = Path(__file__).parents[2] / "scenarios"
# The default suite on RabbitMQ: every scenario whose file does not pin its broker (a scenario that
# names `broker.kind: redis` is about Redis transport mechanics and `--broker` leaves it alone).
DEFAULT = {s.name: s for s in load_suite([SUITE]) if "kind" not in s.broker.model_fields_set}
REDIS_ONLY = {s.name for s in load_suite([SUITE])} - set(DEFAULT)
RABBITMQ_ONLY = {s.name: s for s in load_suite([SUITE / "rabbitmq"])}


def _our_nodes() -> list[str]:
    """Processes of RabbitMQ nodes (their epmd, their rabbitmqctl VMs) this test process started
    and that still run, as ``pid name``."""
    mine = owner_marker(os.getpid())
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.environ().get(OWNER_ENV) == mine and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {proc.info['name']}")
        except psutil.Error:
            continue
    return found


def _no_node_left(deadline: float = 5.0) -> list[str]:
    """What still runs once the run is over, waiting up to ``deadline`` s for processes that
    were killed and are still exiting (a SIGKILLed group's members go one by one)."""
    end = time.monotonic() + deadline
    while (left := _our_nodes()) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def _run(scenario_name: str, tmp_path: Path, on_finish: Any = None) -> dict:
    scenario = DEFAULT.get(scenario_name) or RABBITMQ_ONLY[scenario_name]
    scenario = with_broker_kind(scenario, "rabbitmq")
    options = RunOptions(report_dir=tmp_path, on_finish=on_finish, strict=True)
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    # strict: a non-zero anomaly verdict the scenario does not name fails it (README: Strict)
    assert result.status == PASSED, (
        failure_message(result),
        result.verdicts and result.verdicts.counts,
    )
    assert result.versions["broker"].startswith("rabbitmq 3.")
    left = _no_node_left()
    assert not left, f"a RabbitMQ node outlived its run: {left}"
    return json.loads((result.report_dir / "result.json").read_text())


@pytest.mark.parametrize("name", sorted(DEFAULT))
def test_default_suite_on_rabbitmq(name: str, tmp_path: Path) -> None:
    _run(name, tmp_path)


def test_only_scenarios_about_redis_transport_are_left_on_redis() -> None:
    """The exclusions stay few and deliberate: visibility timeouts, the restore sweep, BRPOP."""
    assert {
        "ack-late-partition-mid-task",
        "ack-late-reply-lost-in-flight",
        "chord-results-on-restarted-broker",
        "eventlet-kill-is-whole-worker",
        "gevent-kill-is-whole-worker",
        "gevent-kill-polling-interval-restores",
    } == REDIS_ONLY


DEAD_LETTER = "rabbitmq-quorum-dead-letter"  # run by its own test below, with more checks


@pytest.mark.parametrize("name", sorted(set(RABBITMQ_ONLY) - {DEAD_LETTER}))
def test_rabbitmq_scenarios(name: str, tmp_path: Path) -> None:
    _run(name, tmp_path)


def test_a_dead_lettered_poison_message_sits_in_the_dead_letter_queue(tmp_path: Path) -> None:
    """The scenario passes (``dead_lettered: 1``), the message really is in celery.dead per
    rabbitmqctl once the run is over (workers frozen, before teardown), and the run ended
    quiescent: the quiet check did not wait for the parked message until the deadline."""
    queues: dict[str, int] = {}

    def count_messages(backend: Any) -> None:
        rows = ctl_rows(backend.broker.access, "list_queues", "-p", "/", "name", "messages")
        queues.update({row["name"]: int(row["messages"]) for row in rows})

    report = _run(DEAD_LETTER, tmp_path, on_finish=count_messages)
    (task,) = report["tasks"]
    assert task["in_broker"] == ["dead_letter:celery.dead:delivery_limit:celery"]
    assert len(task["attempts"]) == 3  # x-delivery-limit 2: three deliveries, then dead-lettered
    assert {a["queue"] for a in task["attempts"]} == {"celery"}
    assert queues["celery.dead"] == 1 and queues["celery"] == 0
    assert report["end_reason"] == "quiescent"


def test_killed_worker_is_redelivered_at_once_on_rabbitmq(tmp_path: Path) -> None:
    """Redis's one-hour visibility timeout leaves these tasks pending; RabbitMQ requeues them
    when the killed worker's socket closes, and the replacement reruns both."""
    report = _run("ack-late-kill-worker-default-visibility", tmp_path)
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
