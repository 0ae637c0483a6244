"""The audit's deploy rules: a grace period shorter than a task may run (``--grace``), the
threads pool's warm shutdown before Celery 5.7 (celery#10180), and dead config (settings written
where the app never reads them), over settings mappings and over real Celery apps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery_chaos.tools import audit
from celery_chaos.tools.audit.strays import ENVIRONMENT, Stray, meant_key, parsed, strays

from tests.unit.test_audit import REDIS, SAFE, codes, finding

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("task_acks_late", "task_time_limit", "worker_prefetch_multiplier")
OLD = {
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
}


def test_a_time_limit_past_the_grace_loses_early_acked_tasks() -> None:
    findings = audit.audit(REDIS | {"task_time_limit": 60}, grace=30)
    grace = finding(findings, "grace-shorter-than-time-limit")
    assert grace.level == audit.ERROR and grace.setting == "--grace 30s <= time_limit 60s"
    assert "lost" in grace.causes and grace.scenario == "evict-ack-late-grace-shorter-than-task"


def test_late_acked_and_rejected_tasks_past_the_grace_run_again() -> None:
    grace = finding(audit.audit(SAFE, grace=30), "grace-shorter-than-time-limit")
    assert grace.level == audit.WARNING and "runs again from the start" in grace.causes


def test_a_grace_that_covers_every_task_or_no_grace_finds_nothing() -> None:
    deploy = {"grace-shorter-than-time-limit", "grace-without-time-limit"}
    assert codes(audit.audit(SAFE, grace=600)) & deploy == set()
    assert codes(audit.audit(SAFE)) & deploy == set()  # no --grace: nothing to compare


def test_a_task_without_time_limit_cannot_be_shown_to_fit_the_grace() -> None:
    tasks = {"app.bounded": {"time_limit": 5}, "app.free": {}}
    unbounded = finding(audit.audit(REDIS, tasks, grace=30), "grace-without-time-limit")
    assert unbounded.level == audit.WARNING and unbounded.tasks == ("app.free",)


@pytest.mark.parametrize(
    ("pool", "multiplier", "version", "found"),
    [
        ("threads", 4, (5, 6), True),
        ("threads", 4, (5, 7), False),  # fixed by celery#10183 in 5.7.0
        ("threads", 1, (5, 6), False),  # nothing prefetched beyond the running tasks
        ("prefork", 4, (5, 6), False),
    ],
)
def test_threads_pool_warm_shutdown_runs_prefetched_tasks_before_5_7(
    pool: str, multiplier: int, version: tuple[int, int], found: bool
) -> None:
    config = REDIS | {"worker_prefetch_multiplier": multiplier}
    findings = audit.audit(config, celery_version=version, pool=pool)
    assert ("threads-warm-shutdown-runs-prefetched" in codes(findings)) == found
    if found:
        assert "celery#10180" in finding(findings, "threads-warm-shutdown-runs-prefetched").causes


@pytest.mark.parametrize(
    ("name", "namespace", "key"),
    [
        ("CELERY_TASK_ACKS_LATE", None, "task_acks_late"),
        ("TASK_ACKS_LATE", "CELERY", "task_acks_late"),
        ("CELERY_ACKS_LATE", None, "task_acks_late"),  # an old name, through Celery's table
        ("CELERYD_PREFETCH_MULTIPLIER", "CELERY", "worker_prefetch_multiplier"),
        ("DEBUG", "CELERY", None),
        ("CELERY_MY_OWN_FLAG", None, None),
    ],
)
def test_the_setting_a_name_is_meant_for(name: str, namespace: str | None, key: str) -> None:
    assert meant_key(name, namespace, KEYS, OLD) == key


def test_environment_text_is_read_as_the_setting_it_would_replace() -> None:
    assert (parsed("True", False), parsed("0", None), parsed("300", None)) == (True, False, 300)
    assert (parsed("2.5", None), parsed("yes", True), parsed("x", 4)) == (2.5, True, "x")
    assert not Stray(ENVIRONMENT, "CELERY_ACKS_LATE", "true", "task_acks_late", True).dead
    assert Stray(ENVIRONMENT, "CELERY_ACKS_LATE", "true", "task_acks_late", False).dead


def test_only_dead_strays_are_findings_and_urls_are_masked() -> None:
    read = Stray(ENVIRONMENT, "CELERY_TASK_TIME_LIMIT", "60", "task_time_limit", 60)
    dead = Stray("settings (config_from_object, namespace CELERY)", "BROKER_URL",
                 "redis://:secret@h:6379/0", "broker_url", None)  # fmt: skip
    (found,) = [f for f in audit.audit(REDIS, strays=(read, dead)) if f.code == "dead-config"]
    assert found.level == audit.WARNING and "BROKER_URL=" in found.setting
    assert "secret" not in found.setting and "meant for broker_url" in found.causes


def settings_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> None:
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))


def dead(app: Celery, environ: dict[str, str] | None = None) -> set[str]:
    return {s.name for s in strays(app, environ or {}) if s.dead}


def test_a_namespaced_app_never_reads_settings_without_the_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "TASK_ACKS_LATE = True\nCELERY_TASK_REJECT_ON_WORKER_LOST = True\nDEBUG = True\n"
    settings_module(tmp_path, monkeypatch, "chaos_ns_settings", text)
    app = Celery("ns")
    app.config_from_object("chaos_ns_settings", namespace="CELERY")
    assert app.conf.task_reject_on_worker_lost is True  # read: the namespace's own prefix
    assert dead(app) == {"TASK_ACKS_LATE"}
    (stray,) = [s for s in strays(app, {}) if s.dead]
    assert stray.where == "chaos_ns_settings (config_from_object, namespace CELERY)"


def test_an_app_without_namespace_never_reads_the_prefixed_new_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "CELERY_TASK_ACKS_LATE = True\ntask_time_limit = 60\n"
    settings_module(tmp_path, monkeypatch, "chaos_plain_settings", text)
    app = Celery("plain")
    app.config_from_object("chaos_plain_settings")
    assert app.conf.task_time_limit == 60  # a lower-case key is read as it is
    assert dead(app) == {"CELERY_TASK_ACKS_LATE"}


def test_environment_variables_celery_never_reads() -> None:
    app = Celery("env")
    app.conf.task_time_limit = 60  # the app read CELERY_TASK_TIME_LIMIT itself
    environ = {
        "CELERY_ACKS_LATE": "True",  # nobody reads it: the mitodl incident
        "CELERY_TASK_TIME_LIMIT": "60",
        "CELERY_WORKER_CONCURRENCY": "3",  # `celery worker` reads it (--concurrency)
        "CELERY_BROKER_URL": "redis://elsewhere",  # Celery reads it itself
    }
    assert dead(app, environ) == {"CELERY_ACKS_LATE"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "audit", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT / "examples",
        env=os.environ | (env or {}),
    )


def test_audit_grace_and_dead_config_on_the_example_app() -> None:
    done = cli("--app", "ingest_app.app:app", "--grace", "10", "--json",
               env={"INGEST_CONFIG": "fixed", "CELERY_TASK_ACKS_LATE": "false"})  # fmt: skip
    document: dict[str, Any] = json.loads(done.stdout)
    found = {f["code"]: f for f in document["findings"]}
    assert found["grace-shorter-than-time-limit"]["setting"] == "--grace 10s <= time_limit 300s"
    assert found["dead-config"]["setting"] == "environment variable: CELERY_TASK_ACKS_LATE='false'"
    assert done.returncode == 0  # late-acked and rejected: warnings, no error


def test_a_bad_grace_is_one_line_and_exit_2() -> None:
    done = cli("--app", "ingest_app.app:app", "--grace", "-1")
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    assert done.returncode == 2 and any("--grace" in line for line in lines)
