"""Every worker runs through the bootstrap, so any named app gets the agent exactly once."""

from __future__ import annotations

from celery import Celery, signals
from celery_chaos.agent.apps import load_app
from celery_chaos.agent.instrument import install, on_prerun
from celery_chaos.placements.worker_command import BOOTSTRAP_APP, worker_app


def test_a_named_app_runs_through_the_bootstrap() -> None:
    assert worker_app("proj.celery:app") == (BOOTSTRAP_APP, {"CHAOS_APP": "proj.celery:app"})


def test_the_bootstrap_itself_is_passed_as_is() -> None:
    """repro already names the bootstrap and puts CHAOS_APP in workers.env."""
    assert worker_app(BOOTSTRAP_APP) == (BOOTSTRAP_APP, {})


def test_load_app_finds_an_app_the_way_celery_a_does() -> None:
    from celery_chaos.sample_tasks.app import app

    assert load_app("celery_chaos.sample_tasks.app") is app  # a module: its `app`
    assert load_app("celery_chaos.sample_tasks.app:app") is app
    assert load_app("celery_chaos.sample_tasks.app.app") is app


def handlers() -> int:
    return sum(1 for _, receiver in signals.task_prerun.receivers if receiver is on_prerun)


def test_install_twice_connects_the_agent_once() -> None:
    """The sample app calls install(app) itself, and the bootstrap calls it again."""
    app = Celery("twice")
    install(app)
    before = handlers()
    install(app)

    assert handlers() == before == 1
