"""What the placement tells the agent about writing: fire-and-forget for a run (which reads the
history after its barrier), only the scenario's checkpoint triggers armable; synchronous, every
checkpoint armable, where the history is read with workers alive (chaos_env)."""

from __future__ import annotations

from pathlib import Path

from celery_chaos.agent import instrument as agent
from celery_chaos.brokers.redis import RedisBroker
from celery_chaos.placements.local.placement import LocalPlacement

from tests.unit.inline_scenario import scenario

KILLS = [
    {"kind": "kill_child", "when": {"task": 0, "checkpoint": "step-5"}},
    {"kind": "kill_child", "when": {"task": 1, "checkpoint": "charge", "attempt": 2}},
    {"kind": "kill_worker", "when": {"at": 1.0}},
]


def _writes(placement: LocalPlacement) -> tuple[str, str]:
    # The broker a started placement has (its settings join the workers' environment).
    placement.broker = RedisBroker(placement.scenario.broker, "redis://broker", log=print)
    env = placement.agent_env("redis://ledger", "redis://broker")
    return env[agent.WRITES_ENV], env[agent.ARMABLE_ENV]


def test_a_run_writes_fire_and_forget_and_arms_only_its_checkpoint_triggers(tmp_path: Path):
    assert _writes(LocalPlacement(scenario(faults=KILLS), tmp_path)) == (
        agent.ASYNC_WRITES,
        "charge,step-5",
    )
    assert _writes(LocalPlacement(scenario(), tmp_path)) == (agent.ASYNC_WRITES, "")


def test_a_placement_read_while_workers_live_writes_synchronously(tmp_path: Path):
    placement = LocalPlacement(scenario(faults=KILLS), tmp_path)
    placement.agent_writes = agent.SYNC_WRITES
    assert _writes(placement) == (agent.SYNC_WRITES, "*")


def test_armable_names_read_as_the_harness_wrote_them(monkeypatch):
    monkeypatch.setenv(agent.ARMABLE_ENV, "charge,step-5")
    assert agent.armable("charge") and agent.armable("step-5") and not agent.armable("step")
    monkeypatch.setenv(agent.ARMABLE_ENV, "")
    assert not agent.armable("charge")
    for everything in ("*", None):
        if everything is None:
            monkeypatch.delenv(agent.ARMABLE_ENV)
        else:
            monkeypatch.setenv(agent.ARMABLE_ENV, everything)
        assert agent.armable("anything")
