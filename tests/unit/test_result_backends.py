"""Result backends: which one a worker's app uses (agent.results), what the placement offers
(worker_command.results_env) and how the run reads states back (run.results_state). Real
workers against real backends: tests/integration/test_result_backends.py."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery_chaos.agent import results
from celery_chaos.core.scenario_parts import ResultsSpec
from celery_chaos.placements.worker_command import results_env, substitute_backends
from celery_chaos.run import results_state
from celery_chaos.tools.repro.app import AppView, results_choice
from celery_chaos.tools.repro.spec import ReproError, ReproSpec

LEDGER = "redis://:pw@ledger:6379/0"
BROKER = "redis://broker:6379/0"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://h:1/0", "redis"),
        ("rediss://h:1/0", "redis"),
        ("sentinel://h:26379", "redis"),
        ("db+sqlite:///r.db", "db"),
        ("db+postgresql://u:p@h/db", "db+postgresql"),
        ("db+postgresql+psycopg2://h/db", "db+postgresql"),
        ("rpc://", "rpc"),
        ("django-db", "django-db"),
        (None, None),
    ],
)
def test_kind_of(url: str | None, kind: str | None) -> None:
    assert results.kind_of(url) == kind


def test_results_env_explicit_substitutes_or_app() -> None:
    explicit = results_env(ResultsSpec(server="broker", db=3), LEDGER, BROKER, "/run")
    assert explicit == {results.RESULT_BACKEND_ENV: "redis://broker:6379/3"}
    assert results_env("app", LEDGER, BROKER, "/run") == {}
    offered = json.loads(results_env(None, LEDGER, BROKER, "/run")[results.SUBSTITUTES_ENV])
    assert offered == substitute_backends(LEDGER, "/run")
    assert offered["redis"] == "redis://:pw@ledger:6379/1"
    assert offered["db"] == "db+sqlite:////run/celery-results.sqlite"
    assert offered["rpc"] == "rpc://"
    assert "db+postgresql" not in offered
    with_pg = substitute_backends(LEDGER, "/run", "postgresql://chaos:chaos@h:5/app")
    assert with_pg["db+postgresql"] == "db+postgresql://chaos:chaos@h:5/app"


def app_with(backend: str | None) -> Celery:
    return Celery("t", backend=backend, set_as_current=False)


@pytest.mark.parametrize(
    ("own", "env", "used", "origin"),
    [
        ("redis://app:6379/0", {}, "redis://app:6379/0", results.APP),
        (None, {}, None, None),
        ("redis://app:6379/0", {"redis": "redis://ledger/1"}, "redis://ledger/1", results.HARNESS),
        ("db+postgresql://a/b", {"db": "db+sqlite:///x"}, "db+sqlite:///x", results.HARNESS),
        (
            "db+postgresql+psycopg://u:p@a/b",
            {"db+postgresql": "db+postgresql://chaos:chaos@run:5/app"},
            "db+postgresql+psycopg://chaos:chaos@run:5/app",
            results.HARNESS,
        ),
        ("django-db", {"redis": "redis://ledger/1"}, "django-db", results.APP_KIND),
        ("cache+memcached://m/", {"redis": "r://l/1"}, "cache+memcached://m/", results.APP_KIND),
        (None, {"redis": "redis://ledger/1"}, None, None),
    ],
)
def test_choose_backend(
    monkeypatch: pytest.MonkeyPatch, own: str | None, env: dict, used: str | None, origin: str
) -> None:
    monkeypatch.delenv(results.RESULT_BACKEND_ENV, raising=False)
    if env:
        monkeypatch.setenv(results.SUBSTITUTES_ENV, json.dumps(env))
    else:
        monkeypatch.delenv(results.SUBSTITUTES_ENV, raising=False)
    app = app_with(own)
    assert results.choose_backend(app) == origin
    assert results.worker_backend(app) == (used, origin)


def test_scenario_backend_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(results.RESULT_BACKEND_ENV, "redis://ledger/2")
    monkeypatch.setenv(results.SUBSTITUTES_ENV, json.dumps({"redis": "redis://ledger/1"}))
    app = app_with("redis://app/0")
    assert results.choose_backend(app) == results.SCENARIO
    assert app.conf.result_backend == "redis://ledger/2"


def test_masked() -> None:
    assert results.masked("redis://user:secret@h:1/0") == "redis://user:***@h:1/0"
    assert results.masked("redis://:secret@h:1/0") == "redis://:***@h:1/0"
    assert results.masked("rpc://") == "rpc://"
    assert results.masked(None) is None


def noop() -> None:
    """A task body."""


def test_stores_result() -> None:
    app = app_with("redis://h:1/0")
    kept = app.task(noop, name="kept")
    ignored = app.task(noop, name="ignored", ignore_result=True)
    assert results.stores_result(kept) and not results.stores_result(ignored)
    assert not results.stores_result(app_with(None).task(noop, name="nobackend"))
    quiet = app_with("redis://h:1/0")
    quiet.conf.task_ignore_result = True
    assert not results.stores_result(quiet.task(noop, name="quiet"))


def history() -> list[dict]:
    return [
        {
            "type": "worker_ready",
            "result_backend": "redis://:***@h/1",
            "result_backend_origin": "o",
        },
        {"type": "attempt_start", "task_id": "a", "attempt": 1, "stores_result": True},
        {"type": "attempt_end", "task_id": "a", "attempt": 1, "state": "SUCCESS"},
        {"type": "attempt_start", "task_id": "b", "attempt": 1, "stores_result": False},
        {"type": "attempt_end", "task_id": "b", "attempt": 1, "state": "SUCCESS"},
        {"type": "attempt_start", "task_id": "c", "attempt": 1, "stores_result": True},
        {"type": "attempt_end", "task_id": "c", "attempt": 1, "state": "FAILURE"},
        {"type": "attempt_start", "task_id": "c", "attempt": 2, "stores_result": True},
        {"type": "attempt_end", "task_id": "c", "attempt": 2, "state": "SUCCESS"},
        {"type": "attempt_start", "task_id": "d", "attempt": 1, "stores_result": True},
    ]


def test_completed_storing_and_reported_backend() -> None:
    assert results_state.completed_storing(history()) == ["a", "c"]
    assert results_state.reported_backend(history()) == ("redis://:***@h/1", "o")


def test_sql_states_read_back(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE celery_taskmeta (task_id TEXT, status TEXT)")
        db.executemany(
            "INSERT INTO celery_taskmeta VALUES (?, ?)", [("a", "SUCCESS"), ("b", "FAILURE")]
        )
    read = results_state._sql_reader(f"db+sqlite:///{path}")
    states = results_state.read_states(read, ["a", "b", "missing"])
    assert states == {"a": "SUCCESS", "b": "FAILURE", "missing": "PENDING"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_backend_is_unreadable_for_every_task() -> None:
    read = results_state._celery_reader(f"redis://127.0.0.1:{closed_port()}/0")
    states = results_state.read_states(read, ["a", "b"])
    assert set(states) == {"a", "b"}
    assert all(s.startswith("unreadable: ") and "onnect" in s for s in states.values()), states


def choice(backend: str | None, keep: bool = False, **spec: Any) -> tuple[Any, str]:
    view = AppView(settings={}, policy=None, queue=None, result_backend=backend)  # type: ignore[arg-type]
    return results_choice(ReproSpec(app="x:app", task="t", **spec), view, keep)


def test_repro_says_which_result_backend() -> None:
    assert choice("redis://u:pw@h:1/0") == (
        None,
        "results: a database of the harness's ledger Redis in place of your app's"
        " redis://u:***@h:1/0 (--results app keeps yours)",
    )
    assert choice("redis://h:1/0", keep=True) == ("app", "results: your app's own redis://h:1/0")
    assert choice(None)[0] is None and "no result_backend" in choice(None)[1]
    assert "an SQLite file" in choice("db+postgresql://h/db")[1]  # no services.postgres
    with_pg = choice("db+postgresql://h/db", services={"postgres": {}})[1]
    assert "the run's PostgreSQL" in with_pg
    assert choice("django-db")[1] == (
        "results: django-celery-results' table in an SQLite file in the run's folder in place"
        " of your app's django-db (--results app keeps yours)"
    )
    with_pg = choice("django-db", services={"postgres": {}})[1]
    assert "django-celery-results' table in the run's PostgreSQL" in with_pg
    chord = {"chord": {"header": [{"task": "t"}], "body": {"task": "t"}}}
    assert choice("redis://h/0", workflow=chord)[0] == {"server": "ledger"}
    with pytest.raises(ReproError, match="--results app: a chord"):
        choice("redis://h/0", keep=True, workflow=chord)


def test_describe_names_the_backend_and_who_chose_it() -> None:
    ready = {"type": "worker_ready", "result_backend": "rpc://", "result_backend_origin": "app"}
    assert results_state.describe([ready]) == [
        "results: rpc:// (the app's own, as results: app asks)"
    ]
    assert results_state.describe([{"type": "worker_ready", "result_backend": None}]) == []
    kept = ready | {"result_backend": "cache+memcached://h/", "result_backend_origin": "app-kind"}
    assert results_state.describe([kept]) == [
        "results: cache+memcached://h/ (the app's own: the harness runs no result backend of"
        " this kind)"
    ]


def test_a_backend_this_process_cannot_load_is_not_read() -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever the backend's import raises
        results_state._celery_reader("django-db")
