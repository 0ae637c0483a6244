"""A scenario that needs a newer Celery than the workers run is ``not_runnable`` with the reason,
unless an ``expect_when`` entry on Celery covers their version (run.versions.needs_newer); the
preflight leaves a newer Celery's setting names to that rule (a typo is still refused). Real
workers on Celery 5.2.7: tests/integration/test_python_option.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celery
from celery.app import defaults
from celery_chaos.core.scenario import Scenario, load_file
from celery_chaos.run.preflight import setting_problem
from celery_chaos.run.versions import CELERY_SINCE, needs_newer
from packaging.version import Version

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def scenario(celery_settings: dict[str, Any], *rules: dict[str, Any], broker: str = "redis"):
    return Scenario.model_validate(
        {
            "name": "needs",
            "description": "a setting of a newer release",
            "celery": celery_settings,
            "broker": {"kind": broker},
            "workload": [{"task": "sample_tasks.tasks.work"}],
            "expect": {"ok": 1},
            "expect_when": list(rules),
        }
    )


def context(celery_version: str, kombu: str = "5.2.4", broker: str = "redis") -> dict:
    return {"broker": broker, "celery": celery_version, "kombu": kombu}


SOFT = {"worker_soft_shutdown_timeout": 5}


def test_a_setting_of_a_newer_celery_is_the_reason_on_older_workers() -> None:
    assert needs_newer(scenario(SOFT), context("5.2.7")) == (
        "celery.worker_soft_shutdown_timeout needs Celery 5.5+; the workers run 5.2.7"
        " (no expect_when on celery covers 5.2.7)"
    )
    assert needs_newer(scenario(SOFT), context("5.5.3")) is None
    assert needs_newer(scenario({"task_acks_late": True}), context("5.2.7")) is None


def test_an_expect_when_on_that_library_holding_for_the_workers_covers_it() -> None:
    older = {"when": {"celery": "<5.5"}, "expect": {"lost": 1}, "why": "no soft shutdown"}
    assert needs_newer(scenario(SOFT, older), context("5.2.7")) is None
    newer_only = {"when": {"celery": ">=5.6"}, "expect": {"lost": 1}, "why": "not for 5.2"}
    broker_only = {"when": {"broker": "redis"}, "expect": {"lost": 1}, "why": "not on celery"}
    for rule in (newer_only, broker_only):
        assert needs_newer(scenario(SOFT, rule), context("5.2.7")) is not None


def test_kombus_restore_options_do_not_make_a_scenario_unrunnable() -> None:
    """Older Kombu ignores them, yet 04a met its expectation on Kombu 5.6.2 (measured): the
    scenario about them (20) says what older Kombu does in its expect_when instead."""
    options = {"broker_transport_options": {"unacked_restore_interval": 1}}
    assert needs_newer(scenario(options), context("5.6.3", "5.6.2")) is None


def test_the_soft_shutdown_scenario_says_what_happens_on_older_workers() -> None:
    loaded = load_file(SCENARIOS / "19-cold-shutdown-soft-timeout.yaml")
    assert needs_newer(loaded, context("5.2.7", "5.2.4")) is None  # their expect_when covers it
    bare = loaded.model_copy(update={"expect_when": []})
    assert needs_newer(bare, context("5.2.7", "5.2.4")) is not None


def test_the_table_agrees_with_the_installed_celery() -> None:
    """Every listed setting is in this Celery's settings exactly when its release is reached."""
    installed = Version(celery.__version__)
    for key, since in CELERY_SINCE.items():
        assert (key in defaults.DEFAULTS) == (installed >= Version(since)), key


def test_the_preflight_leaves_a_newer_celerys_setting_to_the_run_and_still_refuses_a_typo() -> None:
    assert setting_problem("worker_soft_shutdown_timeout") is None
    assert setting_problem("worker_soft_shutdown_timeuot") == (
        "not a Celery setting (did you mean worker_soft_shutdown_timeout?)"
    )
