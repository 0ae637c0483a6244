"""Which broker a run starts: the scenario's own ``broker.kind``, ``--broker`` for scenarios that
name none, and in pytest the broker kind of the workers' app unless the marker or
``--chaos-broker`` says otherwise."""

from __future__ import annotations

from pathlib import Path

from celery_chaos.core.expectations import expected_for
from celery_chaos.core.scenario import parse_scenario, with_broker_kind
from celery_chaos.run.session import ChaosSession

BASE = {
    "name": "s",
    "description": "d",
    "workload": [{"task": "sample_tasks.tasks.work"}],
    "expect": {"pending": 2},
    "expect_when": [{"when": {"broker": "rabbitmq"}, "expect": {"pending": 0}, "why": "w"}],
}


def test_broker_option_moves_a_scenario_and_its_expectations() -> None:
    scenario = with_broker_kind(parse_scenario(BASE, "s.yaml"), "rabbitmq")
    assert scenario.broker.kind == "rabbitmq"
    assert expected_for(scenario, {"broker": scenario.broker.kind})["pending"] == 0
    assert with_broker_kind(scenario, None) is scenario


def test_a_scenario_that_names_its_broker_keeps_it() -> None:
    pinned = parse_scenario(BASE | {"broker": {"kind": "rabbitmq"}}, "s.yaml")
    assert with_broker_kind(pinned, "redis").broker.kind == "rabbitmq"
    redis = parse_scenario(BASE | {"broker": {"kind": "redis"}}, "s.yaml")
    assert with_broker_kind(redis, "rabbitmq").broker.kind == "redis"


def session(broker: str | None = None, app_kind: str | None = "rabbitmq") -> ChaosSession:
    seen: list[str] = []
    kind_of = lambda app: seen.append(app) or app_kind  # noqa: E731
    chaos = ChaosSession("local", Path("unused"), None, broker, kind_of)
    chaos.seen = seen  # type: ignore[attr-defined]
    return chaos


def test_chaos_env_follows_the_apps_broker_kind() -> None:
    chaos = session()
    settings = chaos._with_broker({"workers": {"app": "proj.celery:app"}})
    assert settings["broker"] == {"kind": "rabbitmq"}
    assert chaos.seen == ["proj.celery:app"]  # type: ignore[attr-defined]


def test_the_bootstrap_app_is_looked_through() -> None:
    chaos = session()
    workers = {"app": "celery_chaos.agent.bootstrap", "env": {"CHAOS_APP": "proj:app"}}
    chaos._with_broker({"workers": workers})
    assert chaos.seen == ["proj:app"]  # type: ignore[attr-defined]


def test_marker_then_option_then_app_then_redis() -> None:
    marker = {"broker": {"kind": "redis"}}
    assert session(broker="rabbitmq")._with_broker(marker)["broker"] == {"kind": "redis"}
    assert session(broker="redis")._with_broker({})["broker"] == {"kind": "redis"}
    assert session(app_kind=None)._with_broker({})["broker"] == {"kind": "redis"}
