"""The fault registry (pure): every kind is one complete object (handler, parameter model,
placements, storm and repro rules), the schema, storms, repro and the backends read the same
registry, and carrying a kind out turns nothing-to-hit and a raising primitive into statuses."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import FAULT_KINDS, ScenarioError
from celery_chaos.core.scenario_parts import Fault, StormFault
from celery_chaos.faults import base, registry
from celery_chaos.faults.base import INJECTED, INJECTION_ERROR, MISSED, Aim, FaultResult
from celery_chaos.faults.params import Params
from celery_chaos.faults.registry import FAULTS, carry_out, repro_kinds, storm_kinds, supported_by
from celery_chaos.placements.base import Worker
from celery_chaos.placements.docker.placement import DockerPlacement
from celery_chaos.placements.local.placement import LocalPlacement
from celery_chaos.run.watcher import LiveAttempt
from celery_chaos.tools import repro

from tests.unit.inline_scenario import scenario

ROOT = Path(__file__).resolve().parents[2]
ALL = list(FAULTS.values())


@pytest.mark.parametrize("kind", ALL, ids=[k.name for k in ALL])
def test_every_kind_is_complete(kind: base.FaultKind) -> None:
    assert re.fullmatch(r"[a-z_]+", kind.name) and kind.summary
    assert list(inspect.signature(kind.apply).parameters) == [
        "placement",
        "fault",
        "aim",
        "release",
    ]
    assert issubclass(kind.params, Params)
    assert kind.placements and kind.placements <= base.PLACEMENTS
    assert kind.proxied_on <= kind.placements
    assert kind.undoes is None or kind.undoes in FAULTS
    assert kind.band is None or kind.band.css.startswith("band-")
    if kind.band is not None and kind.band.until_undone:
        assert registry.undone_by(kind.name) is not None, "a band that lasts needs its end"


def test_the_registry_is_keyed_by_unique_names_and_is_the_schema() -> None:
    names = [kind.name for kind in ALL]
    assert len(names) == len(set(names)) == len(FAULTS)
    assert tuple(FAULTS) == FAULT_KINDS


def test_each_kinds_options_are_the_faults_own_fields_with_the_same_defaults() -> None:
    """The YAML keys stay flat on ``Fault``; each kind's parameter model names a subset."""
    for kind in ALL:
        for name, field in kind.params.model_fields.items():
            assert name in Fault.model_fields, (kind.name, name)
            assert field.default == Fault.model_fields[name].default, (kind.name, name)


def faults_of(*faults: dict[str, Any]) -> list[Fault]:
    return scenario(faults=list(faults)).faults


def test_an_option_the_kind_does_not_read_is_refused_naming_it() -> None:
    data = {
        "name": "x",
        "description": "x",
        "workload": [{"task": "t"}],
        "faults": [{"kind": "kill_child", "when": {"at": 0}, "latency": 0.5}],
    }
    with pytest.raises(ScenarioError) as error:
        parse_scenario(data, "x.yaml")
    assert str(error.value) == (
        "x.yaml: faults[0]: latency: not an option of kind kill_child (it takes none)"
    )
    data["faults"] = [{"kind": "partition", "when": {"at": 0}, "rate": "1k"}]
    with pytest.raises(ScenarioError, match=r"rate: not an option of kind partition \(it takes"):
        parse_scenario(data, "x.yaml")


def test_todays_option_messages_are_kept() -> None:
    data = {
        "name": "x",
        "description": "x",
        "workload": [{"task": "t"}],
        "faults": [{"kind": "bandwidth", "when": {"at": 0}, "rate": "fast"}],
    }
    with pytest.raises(ScenarioError) as error:
        parse_scenario(data, "x.yaml")
    assert str(error.value) == (
        "x.yaml: faults[0].rate: not a byte rate: 'fast' (use e.g. 500, 16k, 1M)"
    )


def test_the_kinds_each_option_belongs_to_are_accepted() -> None:
    (oom, latency, start) = faults_of(
        {"kind": "oom", "when": {"at": 0}, "headroom": "8M", "wait": 5, "target": {"task": 0}},
        {"kind": "latency", "when": {"at": 0}, "latency": 0.5, "duration": 2},
        {"kind": "start_worker", "when": {"at": 0}, "wait_ready": False},
    )
    assert (oom.headroom, latency.latency, start.wait_ready) == ("8M", 0.5, False)


def test_backends_support_what_the_registry_says() -> None:
    assert LocalPlacement.supported_faults == supported_by("local")
    assert DockerPlacement.supported_faults == supported_by("docker")


def test_repro_offers_the_kinds_whose_module_says_so() -> None:
    assert repro_kinds() == repro.FAULTS
    assert set(repro.FaultKind.__args__) == set(repro_kinds())  # type: ignore[attr-defined]
    timed = {k for k in repro_kinds() if FAULTS[k].repro and FAULTS[k].repro.timed}  # type: ignore[union-attr]
    assert all("duration" in FAULTS[k].params.model_fields for k in timed)


def test_storms_draw_exactly_the_kinds_with_a_storm_rule() -> None:
    assert set(StormFault.model_fields["kind"].annotation.__args__) == set(storm_kinds())  # type: ignore[union-attr]
    for name in storm_kinds():
        rule = FAULTS[name].storm
        assert rule is not None
        if rule.needs_duration:
            assert "duration" in FAULTS[name].params.model_fields
        if rule.poolless_as is not None:
            assert FAULTS[rule.poolless_as].storm is not None
    with pytest.raises(ValueError, match="a storm's latency needs duration"):
        StormFault.model_validate({"kind": "latency", "every": {"min": 1, "max": 2}})


def test_every_kind_says_how_each_of_its_placements_carries_it_out() -> None:
    """The docs' how-each-backend-does-it table is generated from these (docs/hooks)."""
    for kind in FAULTS.values():
        assert set(kind.how) == set(kind.placements), kind.name
        assert all(text.strip() for text in kind.how.values()), kind.name


def test_the_docs_page_generates_the_how_table_rather_than_copying_it() -> None:
    text = (ROOT / "docs" / "reference" / "faults.md").read_text(encoding="utf-8")
    section = text.split("\n## How each backend carries them out\n", 1)[1].split("\n## ", 1)[0]
    assert "<!-- fault-kinds-how -->" in section
    assert not [line for line in section.splitlines() if line.startswith("| `")]


class Placement:
    """A small stand-in for a placement: records the primitives called, or raises."""

    def __init__(self, pool: str = "prefork", error: Exception | None = None) -> None:
        self.scenario = scenario(workers={"pool": pool})
        self.calls: list[tuple[str, Any]] = []
        self.error = error

    def _call(self, name: str, arg: Any) -> str:
        if self.error is not None:
            raise self.error
        self.calls.append((name, arg))
        return f"{name} done"

    def kill_worker(self, worker: Worker) -> str:
        return self._call("kill_worker", worker.name)

    def kill_pool_process(self, worker: Worker, pid: int) -> str:
        return self._call("kill_pool_process", pid)


WORKER = Worker(0, "w0@chaos", None)
NOTHING: Callable[[], None] = lambda: None  # noqa: E731


def test_nothing_to_hit_is_missed_and_no_primitive_is_called() -> None:
    placement = Placement()
    (kill,) = faults_of({"kind": "kill_worker", "when": {"at": 0}, "target": {"worker": 0}})
    (child,) = faults_of({"kind": "kill_child", "when": {"at": 0}})

    no_worker = carry_out(placement, kill, Aim(None, None), NOTHING)  # type: ignore[arg-type]
    no_task = carry_out(placement, child, Aim(WORKER, None), NOTHING)  # type: ignore[arg-type]

    assert (no_worker.status, no_worker.detail) == (MISSED, "no worker to target")
    assert (no_task.status, no_task.detail) == (MISSED, "no running attempt of the target task")
    assert placement.calls == []


def test_a_primitive_that_raises_is_an_injection_error() -> None:
    placement = Placement(error=OSError("boom"))
    (kill,) = faults_of({"kind": "kill_worker", "when": {"at": 0}})

    result = carry_out(placement, kill, Aim(WORKER, None), NOTHING)  # type: ignore[arg-type]

    assert (result.status, result.detail) == (INJECTION_ERROR, "OSError: boom")


@pytest.mark.parametrize(
    ("pool", "call", "blame"),
    [
        ("prefork", ("kill_pool_process", 42), "pid"),
        ("gevent", ("kill_worker", "w0@chaos"), "worker"),
    ],
)
def test_kill_child_blames_the_process_or_on_a_poolless_worker_the_worker(
    pool: str, call: tuple[str, Any], blame: str
) -> None:
    placement = Placement(pool=pool)
    (child,) = faults_of({"kind": "kill_child", "when": {"at": 0}})
    attempt = LiveAttempt("t1", 1, WORKER.name, 42)

    result = carry_out(placement, child, Aim(WORKER, attempt, [attempt]), NOTHING)  # type: ignore[arg-type]

    assert isinstance(result, FaultResult) and result.status == INJECTED
    assert (placement.calls, result.blame) == ([call], blame)
    assert result.hits == [{"task_id": "t1", "attempt": 1}]


def test_a_kind_needing_a_broker_capability_names_a_flag_brokers_have() -> None:
    from celery_chaos.brokers import BROKERS
    from celery_chaos.brokers.base import Broker

    needing = {kind.name: kind.needs_broker for kind in ALL if kind.needs_broker is not None}
    assert needing == {"close_connection": "closes_connections"}
    assert all(isinstance(getattr(Broker, flag), bool) for flag in needing.values())
    assert [k for k, broker in BROKERS.items() if broker.closes_connections] == ["rabbitmq"]
