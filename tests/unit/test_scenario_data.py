"""The app's state in a scenario (services, setup, invariants, ``results: app``): each shape
loads, and each mistake is one line naming the file and the field path."""

from __future__ import annotations

from typing import Any

import pytest
from celery_chaos.cli_schema import scenario_json_schema
from celery_chaos.core.scenario import parse_scenario, with_broker_kind
from celery_chaos.core.scenario_base import Range, ScenarioError
from celery_chaos.core.scenario_parts import ResultsSpec
from celery_chaos.placements.worker_command import results_url

BASE: dict[str, Any] = {
    "name": "app-state",
    "description": "the app's state is part of the verdict",
    "workload": [{"task": "sample_tasks.tasks.work"}],
}
PG = {"services": {"postgres": {}}}


def load(**changes: Any) -> Any:
    return parse_scenario(BASE | changes, "app.yaml")


def test_the_issue_example_loads() -> None:
    scenario = load(
        services={"postgres": {"image": "postgres:15", "database": "app"}, "redis": {}},
        setup=[
            {"sql": "CREATE TABLE documents (id int, backend_lock bool)"},
            {"run": "python manage.py migrate", "timeout": 30},
        ],
        invariants=[
            {"name": "no-stuck", "sql": "SELECT count(*) FROM d WHERE id IN ({task_ids})",
             "expect": 0},
            {"name": "exports", "path": "media/exports/{run_id}/*.zip",
             "expect": {"min": 3, "max": 3}},
            {"name": "no-orphan-lock", "redis": "lock:doc:*", "expect": 0, "during": True},
        ],
        results="app",
    )  # fmt: skip
    assert scenario.services.postgres.database == "app"
    assert scenario.services.redis.image is None
    assert [s.timeout for s in scenario.setup] == [120.0, 30.0]
    assert [(i.kind, i.during) for i in scenario.invariants] == [
        ("sql", False),
        ("path", False),
        ("redis", True),
    ]
    assert scenario.invariants[1].expect == Range(min=3, max=3)
    assert scenario.invariants[0].query.endswith("({task_ids})")
    assert scenario.results == "app"


def test_defaults_are_empty() -> None:
    scenario = load()
    assert scenario.services.postgres is None and scenario.services.redis is None
    assert scenario.setup == [] and scenario.invariants == [] and scenario.results is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"setup": [{"sql": "SELECT 1"}]}, "setup[0].sql: needs services.postgres"),
        ({**PG, "setup": [{"sql": "x", "run": "y"}]}, "setup[0]: give exactly one of sql or run"),
        ({"setup": [{"timeout": 3}]}, "setup[0]: give exactly one of sql or run"),
        ({**PG, "setup": [{"sql": "x", "timeout": 3}]}, "setup[0]: timeout: only a run step"),
        ({"setup": [{"run": "true", "timeout": -1}]}, "setup[0].timeout:"),
        ({"services": {"mysql": {}}}, "services.mysql: Extra inputs"),
        ({"services": {"postgres": {"database": "A b"}}}, "services.postgres.database:"),
        (
            {"invariants": [{"name": "a", "sql": "SELECT 1", "expect": 0}]},
            "invariants[0].sql: needs services.postgres (or a url",
        ),
        (
            {"invariants": [{"name": "a", "redis": "lock:*", "expect": 0}]},
            "invariants[0].redis: needs services.redis",
        ),
        ({"invariants": [{"name": "a", "expect": 0}]}, "invariants[0]: give exactly one of sql"),
        (
            {"invariants": [{"name": "a", "path": "x", "redis": "y", "expect": 0}]},
            "invariants[0]: give exactly one of sql, redis or path",
        ),
        (
            {"invariants": [{"name": "a", "path": "x", "expect": 0}] * 2},
            "invariants[1].name: duplicate invariant name 'a'",
        ),
        (
            {"invariants": [{"name": "a", "path": "{task_ids}/*", "expect": 0}]},
            "invariants[0].path: {task_ids} is only for sql",
        ),
        (
            {"invariants": [{"name": "a", "path": "{doc}/*", "expect": 0}]},
            "invariants[0].path: unknown placeholder {doc}",
        ),
        (
            {"invariants": [{"name": "a", "path": "x", "expect": -1}]},
            "invariants[0].expect: -1: expected a count",
        ),
        (
            {"invariants": [{"name": "a", "path": "x", "expect": True}]},
            "invariants[0].expect: True: expected a count",
        ),
        (
            {"invariants": [{"name": "a", "path": "x", "expect": {"min": 3, "max": 1}}]},
            "invariants[0].expect: min 3 > max 1",
        ),
        ({"invariants": [{"name": "a", "path": "x"}]}, "invariants[0].expect: Field required"),
        (
            {"invariants": [{"name": "a", "sql": "x", "expect": 0, "url": "mysql://h/db"}]},
            "invariants[0].url: 'mysql': expected a URL starting with sqlite:///",
        ),
        (
            {"invariants": [{"name": "a", "redis": "k", "expect": 0, "url": "sqlite:///x"}]},
            "invariants[0].url: 'sqlite': expected a URL starting with redis://",
        ),
        (
            {"invariants": [{"name": "a", "path": "x", "expect": 0, "url": "redis://h"}]},
            "invariants[0].url: a path invariant reads the workers' files",
        ),
        ({"results": "mine"}, "results: 'mine': expected app"),
        ({"results": {"server": "x"}}, "results.server: Input should be 'broker' or 'ledger'"),
        ({"results": {"db": 16}}, "results.db: 16 is above the upper bound 15"),
        (
            {"results": "app", "workload": [{"chord": {"header": [{"task": "a"}],
                                                       "body": {"task": "b"}}}]},
            "workload[0].chord: a chord needs a result backend the harness runs",
        ),
    ],
)  # fmt: skip
def test_mistakes_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load(**changes)
    text = str(caught.value)
    assert text.startswith(f"app.yaml: {message}"), text
    assert "\n" not in text


def test_a_url_reads_another_database_without_a_service() -> None:
    scenario = load(
        invariants=[
            {"name": "rows", "sql": "SELECT 1", "expect": 1, "url": "sqlite:///db.sqlite3"},
            {"name": "keys", "redis": "k:*", "expect": 0, "url": "redis://localhost:6379/0"},
        ]
    )
    assert [i.url is not None for i in scenario.invariants] == [True, True]


def test_results_app_runs_no_harness_backend() -> None:
    """``results: app`` keeps the app's own backend: no URL from the harness, and the
    ``--broker`` override treats it like any scenario."""
    scenario = load(results="app")
    assert results_url(scenario.results, "redis://l:1/0", "redis://b:2/0") is None
    assert with_broker_kind(scenario, "rabbitmq").broker.kind == "rabbitmq"
    spec = ResultsSpec(server="broker", db=3)
    assert results_url(spec, "redis://l:1/0", "redis://b:2/0") == "redis://b:2/3"


def test_the_json_schema_has_the_new_keys() -> None:
    properties = scenario_json_schema()["properties"]
    assert {"services", "setup", "invariants"} <= set(properties)
    assert any(
        option.get("const") == "app" or option.get("enum") == ["app"]
        for option in properties["results"]["anyOf"]
    )
