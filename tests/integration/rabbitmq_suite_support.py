"""What the local RabbitMQ suite tests share: the scenario lists, one way to run a scenario on a
local ``rabbitmq-server`` node (strict, nothing left behind), and the default suite cut into
quarters so ``--dist loadfile`` spreads its ~40 scenarios over four files run side by side.

As a suite run does (``celery-chaos run --broker rabbitmq``), every scenario that can runs in a
vhost of its own on one node of the test process (the ``shared_rabbitmq`` fixture,
``placements/local/rabbitmq_shared.py``): Erlang start-up is 4 s of CPU per node. A scenario
that crashes the node or sets a node-wide option gets a node of its own. Each test is one
scenario: select with ``-k`` when iterating."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from celery_chaos.core.conclusion import PASSED, failure_message
from celery_chaos.core.scenario import load_suite, with_broker_kind
from celery_chaos.placements.local.processes import pid_alive
from celery_chaos.placements.local.rabbitmq_server import (
    OWNER_ENV,
    RabbitMQUnavailable,
    find_rabbitmq,
    owner_marker,
)
from celery_chaos.placements.local.rabbitmq_shared import SharedRabbitMQ
from celery_chaos.run.runner import RunOptions, run_scenario

SUITE = Path(__file__).parents[2] / "scenarios"
# The default suite on RabbitMQ: every scenario whose file does not pin its broker (a scenario that
# names `broker.kind: redis` is about Redis transport mechanics and `--broker` leaves it alone).
DEFAULT = {s.name: s for s in load_suite([SUITE]) if "kind" not in s.broker.model_fields_set}
REDIS_ONLY = {s.name for s in load_suite([SUITE])} - set(DEFAULT)
RABBITMQ_ONLY = {s.name: s for s in load_suite([SUITE / "rabbitmq"])}
QUARTERS = [sorted(DEFAULT)[i::4] for i in range(4)]


def skip_without_rabbitmq() -> None:
    """Skip the calling test module where no ``rabbitmq-server`` is installed."""
    try:
        find_rabbitmq()
    except RabbitMQUnavailable as missing:
        pytest.skip(str(missing), allow_module_level=True)


def _our_nodes(keep: frozenset[int] = frozenset()) -> list[str]:
    """Processes of RabbitMQ nodes (their epmd, their rabbitmqctl VMs) this test process started
    and that still run, as ``pid name``, but for those in ``keep``."""
    mine = owner_marker(os.getpid())
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.pid in keep:
            continue
        try:
            if proc.environ().get(OWNER_ENV) == mine and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {proc.info['name']}")
        except psutil.Error:
            continue
    return found


def no_node_left(keep: frozenset[int] = frozenset(), deadline: float = 5.0) -> list[str]:
    """What still runs once the run is over (but for the ``keep`` pids: the shared node's),
    waiting up to ``deadline`` s for processes that were killed and are still exiting (a
    SIGKILLed group's members go one by one)."""
    end = time.monotonic() + deadline
    while (left := _our_nodes(keep)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def outlived(pids: list[int], deadline: float = 5.0) -> list[int]:
    """Which of ``pids`` still run (not zombies) after up to ``deadline`` s: a node's port
    programs (``erl_child_setup``, ``inet_gethost``) exit a moment after its VM."""
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(found, timeout=deadline)
    return sorted(process.pid for process in left if pid_alive(process.pid))


def run_on_rabbitmq(
    scenario_name: str, tmp_path: Path, shared: SharedRabbitMQ, on_finish: Any = None
) -> dict:
    """Run a scenario strict on a local RabbitMQ node (a vhost of ``shared`` where it can); it
    must pass and leave no node behind but the shared one."""
    scenario = DEFAULT.get(scenario_name) or RABBITMQ_ONLY[scenario_name]
    scenario = with_broker_kind(scenario, "rabbitmq")
    options = RunOptions(
        report_dir=tmp_path, on_finish=on_finish, strict=True,
        backend_options={"shared_rabbitmq": shared},
    )  # fmt: skip
    result = run_scenario(scenario, options, tmp_path, log=lambda _: None)
    # strict: a non-zero anomaly verdict the scenario does not name fails it (README: Strict)
    assert result.status == PASSED, (
        failure_message(result),
        result.verdicts and result.verdicts.counts,
    )
    assert result.versions["broker"].startswith("rabbitmq 3.")
    left = no_node_left(frozenset(shared.node.pids() if shared.node else ()))
    assert not left, f"a RabbitMQ node outlived its run: {left}"
    return json.loads((result.report_dir / "result.json").read_text())


def quarter_of_the_suite(index: int) -> Callable[..., None]:
    """The test of one quarter of the default suite on RabbitMQ (a test file assigns it)."""

    @pytest.mark.integration
    @pytest.mark.parametrize("name", QUARTERS[index])
    def test_default_suite_on_rabbitmq(
        name: str, tmp_path: Path, shared_rabbitmq: SharedRabbitMQ
    ) -> None:
        run_on_rabbitmq(name, tmp_path, shared_rabbitmq)

    return test_default_suite_on_rabbitmq
