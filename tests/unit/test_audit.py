"""The audit rules over settings mappings: each risk is found, named, levelled and demonstrable."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from celery_chaos.core.scenario import load_suite
from celery_chaos.tools import audit

ROOT = Path(__file__).resolve().parents[2]
REDIS = {"broker_url": "redis://localhost:6379/0"}
SAFE: dict[str, Any] = REDIS | {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "task_time_limit": 300,
    "broker_transport_options": {"visibility_timeout": 600},
    "worker_soft_shutdown_timeout": 30.0,
    "worker_enable_soft_shutdown_on_idle": True,
}


def codes(findings: list[audit.Finding], level: str | None = None) -> set[str]:
    return {f.code for f in findings if level is None or f.level == level}


def finding(findings: list[audit.Finding], code: str) -> audit.Finding:
    return next(f for f in findings if f.code == code)


def test_celery_defaults_lose_killed_tasks() -> None:
    findings = audit.audit(REDIS)
    early = finding(findings, "defaults-child-kill")
    assert early.level == audit.ERROR and early.scenario == "defaults-child-kill"
    assert early.setting == "task_acks_late=False (Celery default)"
    assert audit.exit_code(findings) == 1


def test_acks_late_without_reject_is_an_error() -> None:
    findings = audit.audit(REDIS | {"task_acks_late": True})
    assert codes(findings, audit.ERROR) == {"ack-late-no-reject-child-kill"}
    assert finding(findings, "ack-late-no-reject-child-kill").scenario == (
        "ack-late-no-reject-child-kill"
    )


def test_retry_on_worker_lost_also_keeps_a_child_kill_from_losing_the_task() -> None:
    config = REDIS | {"task_acks_late": True, "task_retry_on_worker_lost": True}
    assert "ack-late-no-reject-child-kill" not in codes(audit.audit(config))


def test_recommended_settings_have_no_error() -> None:
    findings = audit.audit(SAFE)
    assert codes(findings, audit.ERROR) == set()
    assert audit.exit_code(findings) == 0
    assert finding(findings, "poison-reject").level == audit.WARNING
    assert finding(findings, "ack-late-kill-worker-default-visibility").level == audit.INFO


def test_default_visibility_timeout_with_acks_late_warns_of_the_hour() -> None:
    config = SAFE | {"broker_transport_options": {}, "task_time_limit": None}
    found = finding(audit.audit(config), "ack-late-kill-worker-default-visibility")
    assert found.level == audit.WARNING and "an hour" in found.causes
    assert found.setting.startswith(
        "visibility_timeout=3600s (Kombu default); Kombu's restore sweep every 100s"
        " (unacked_restore_interval=10s x unacked_restore_throttle=10"
    )


def test_visibility_shorter_than_a_task_time_limit_is_an_error() -> None:
    config = SAFE | {"broker_transport_options": {"visibility_timeout": 60}}
    found = finding(audit.audit(config), "visibility-shorter-than-task")
    assert found.level == audit.ERROR and found.scenario == "visibility-shorter-than-task"
    assert "60s" in found.setting and "300s" in found.setting


def test_per_task_time_limit_counts() -> None:
    tasks = {"app.slow": {"time_limit": 900}, "app.fast": {"time_limit": 10}}
    found = finding(audit.audit(SAFE, tasks), "visibility-shorter-than-task")
    assert found.tasks == ("app.slow",)


def test_eta_longer_than_visibility_is_an_error_even_with_early_acks() -> None:
    config = REDIS | {"broker_transport_options": {"visibility_timeout": 60}}
    found = finding(audit.audit(config, max_eta=3600), "visibility-shorter-than-eta")
    assert found.level == audit.ERROR and found.scenario == "visibility-shorter-than-task"
    assert "visibility-shorter-than-eta" not in codes(audit.audit(config, max_eta=30))


def test_late_acked_task_without_time_limit_warns() -> None:
    config = SAFE | {"task_time_limit": None}
    assert finding(audit.audit(config), "no-time-limit").level == audit.WARNING


def test_prefetch_with_acks_late_on_redis_warns() -> None:
    config = SAFE | {"worker_prefetch_multiplier": 4}
    found = finding(audit.audit(config), "prefetch-with-acks-late")
    assert found.level == audit.WARNING and "4" in found.causes


def test_visibility_rules_only_apply_to_redis() -> None:
    config = {k: v for k, v in SAFE.items() if k != "broker_url"} | {
        "worker_prefetch_multiplier": 4
    }
    found = codes(audit.audit(config | {"broker_transport_options": {"visibility_timeout": 1}}))
    assert not found & {
        "visibility-shorter-than-task",
        "ack-late-kill-worker-default-visibility",
        "prefetch-with-acks-late",
    }
    assert "durable queues" in finding(audit.audit(config), "broker-restart-no-persistence").causes


@pytest.mark.parametrize(
    ("version", "settings", "expected"),
    [
        ((5, 4), {}, ("no-soft-shutdown", audit.INFO)),
        ((5, 5), {"worker_soft_shutdown_timeout": 0.0}, ("no-soft-shutdown", audit.WARNING)),
        (
            (5, 5),
            {"worker_enable_soft_shutdown_on_idle": False},
            ("no-soft-shutdown-on-idle", audit.INFO),
        ),
        ((5, 5), {}, None),
    ],
)
def test_soft_shutdown(
    version: tuple[int, int], settings: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    findings = audit.audit(SAFE | settings, celery_version=version)
    shutdown = [(f.code, f.level) for f in findings if f.code.startswith("no-soft-shutdown")]
    assert shutdown == ([expected] if expected else [])


def test_no_soft_shutdown_is_only_info_when_acks_are_early() -> None:
    assert finding(audit.audit(REDIS), "no-soft-shutdown").level == audit.INFO


def test_acks_on_failure_or_timeout_disabled_warns() -> None:
    config = SAFE | {"task_acks_on_failure_or_timeout": False}
    assert finding(audit.audit(config), "acks-on-failure-or-timeout").level == audit.WARNING
    assert finding(audit.audit(SAFE), "acks-on-failure-or-timeout").level == audit.INFO


def test_task_options_override_the_app_setting() -> None:
    tasks = {
        "app.safe": {"acks_late": True, "reject_on_worker_lost": True},
        "app.plain": {},
    }
    early = finding(audit.audit(REDIS, tasks), "defaults-child-kill")
    assert early.tasks == ("app.plain",)
    late_only = {"app.half": {"acks_late": True}}
    found = finding(audit.audit(REDIS, late_only), "ack-late-no-reject-child-kill")
    assert found.tasks == ("app.half",)


def test_a_task_that_opts_out_is_named_in_the_setting() -> None:
    tasks = {"app.fast": {"acks_late": False}, "app.slow": {}}
    found = finding(audit.audit(SAFE, tasks), "defaults-child-kill")
    assert found.tasks == ("app.fast",) and "acks_late set on task app.fast" in found.setting


def test_broker_persistence_is_always_an_info() -> None:
    found = finding(audit.audit(SAFE), "broker-restart-no-persistence")
    assert found.level == audit.INFO and "appendonly" in found.causes


def test_findings_are_ordered_most_severe_first() -> None:
    levels = [f.level for f in audit.audit(REDIS | {"task_acks_late": True})]
    assert levels == sorted(levels, key=audit.LEVELS.index)


def test_every_named_scenario_is_in_the_installed_default_suite() -> None:
    # The suite a wheel user gets (celery_chaos.scenarios), not the repo's folder by path.
    installed = Path(str(resources.files("celery_chaos.scenarios")))
    names = {s.name for s in load_suite([installed])}
    configs = [REDIS, REDIS | {"task_acks_late": True}, SAFE | {"task_time_limit": 7200}]
    named = {f.scenario for c in configs for f in audit.audit(c, max_eta=99999) if f.scenario} | {
        f.scenario for f in audit.audit(SAFE | {"task_acks_on_failure_or_timeout": False})
    }
    assert named - {None} <= names
    assert len(named) >= 6


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        (None, "amqp"),
        ("redis://h:6379/0", "redis"),
        ("rediss://h", "rediss"),
        ("sentinel://a;sentinel://b", "sentinel"),
        (["redis://a", "redis://b"], "redis"),
        ("amqp://guest@localhost//", "amqp"),
    ],
)
def test_broker_scheme(url: Any, scheme: str) -> None:
    assert audit.broker_scheme(url) == scheme


def test_collect_reads_a_real_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_CONFIG", "fixed")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    monkeypatch.delitem(__import__("sys").modules, "ingest_app.app", raising=False)
    app = audit.import_app("ingest_app.app:app", ROOT / "examples")
    collected = audit.collect(app)
    assert collected.config["task_acks_late"] is True
    assert collected.config["broker_transport_options"] == {"visibility_timeout": 600}
    assert collected.tasks["ingest_app.ingest"]["acks_late"] is True
    assert collected.tasks["ingest_app.ingest"]["time_limit"] == 300
    findings = audit.audit(collected.config, collected.tasks, collected.celery_version)
    assert audit.exit_code(findings) == 0


def test_import_failure_is_one_line() -> None:
    with pytest.raises(audit.AppImportError) as error:
        audit.import_app("no_such_module_here:app", ROOT)
    assert "\n" not in str(error.value) and "ModuleNotFoundError" in str(error.value)


def test_shown_by_needs_no_clone() -> None:
    early = finding(audit.audit(REDIS), "defaults-child-kill")
    assert early.shown_by == "celery-chaos run --only defaults-child-kill"
    assert early.as_dict()["shown_by"] == early.shown_by
    assert finding(audit.audit(REDIS), "no-soft-shutdown").shown_by is None


def test_report_document_masks_the_broker_password() -> None:
    settings = audit.AppSettings({"broker_url": "redis://:secret@host:6379/0"}, {}, (5, 5))
    document = audit.report_document("x:app", settings, [])
    assert "secret" not in str(document["settings"]["broker_url"])


# --- RabbitMQ ------------------------------------------------------------------------------------

RABBIT_SAFE: dict[str, Any] = SAFE | {"broker_url": "amqp://guest@rabbit//"}
RABBIT_CODES = {
    "rabbitmq-consumer-timeout",
    "rabbitmq-consumer-timeout-eta",
    "rabbitmq-quorum-delivery-limit",
    "rabbitmq-heartbeat-disabled",
    "rabbitmq-transient",
    "rabbitmq-prefetch-global-qos",
}


def test_a_safe_rabbitmq_app_has_no_rabbitmq_findings() -> None:
    assert not codes(audit.audit(RABBIT_SAFE)) & RABBIT_CODES


def test_redis_apps_get_no_rabbitmq_findings() -> None:
    risky = REDIS | {"broker_heartbeat": 0, "task_default_delivery_mode": "transient"}
    assert not codes(audit.audit(risky, max_eta=99999)) & RABBIT_CODES


def test_consumer_timeout_shorter_than_time_limit_or_eta() -> None:
    slow = audit.audit(RABBIT_SAFE | {"task_time_limit": 7200}, max_eta=86400)
    assert {"rabbitmq-consumer-timeout", "rabbitmq-consumer-timeout-eta"} <= codes(slow, "error")
    assert "1800s" in finding(slow, "rabbitmq-consumer-timeout").setting


def test_quorum_delivery_limit_with_reject_on_worker_lost() -> None:
    from kombu import Queue

    quorum = Queue("celery", queue_arguments={"x-queue-type": "quorum", "x-delivery-limit": 2})
    findings = audit.audit(RABBIT_SAFE | {"task_queues": [quorum]})
    found = finding(findings, "rabbitmq-quorum-delivery-limit")
    assert found.level == audit.WARNING and "x-delivery-limit=2" in found.setting
    assert found.scenario == "rabbitmq-quorum-delivery-limit"
    assert "dropped_at_delivery_limit" in found.causes


def test_quorum_delivery_limit_with_a_dead_letter_exchange_points_at_dead_lettered() -> None:
    from kombu import Queue

    arguments = {"x-queue-type": "quorum", "x-delivery-limit": 2, "x-dead-letter-exchange": ""}
    findings = audit.audit(
        RABBIT_SAFE | {"task_queues": [Queue("celery", queue_arguments=arguments)]}
    )
    found = finding(findings, "rabbitmq-quorum-delivery-limit")
    assert found.scenario == "rabbitmq-quorum-dead-letter"
    assert "dead_lettered" in found.causes


def test_heartbeat_transient_and_prefetch() -> None:
    from kombu import Queue

    risky = RABBIT_SAFE | {
        "broker_heartbeat": 0,
        "task_default_delivery_mode": "transient",
        "task_queues": [Queue("celery", durable=False)],
        "worker_prefetch_multiplier": 4,
    }
    found = audit.audit(risky)
    assert {"rabbitmq-heartbeat-disabled", "rabbitmq-prefetch-global-qos"} <= codes(found)
    transient = finding(found, "rabbitmq-transient")
    assert transient.level == audit.ERROR
    assert "celery" in transient.setting and "transient" in transient.setting


def test_an_app_without_broker_url_is_audited_as_rabbitmq() -> None:
    assert "rabbitmq-heartbeat-disabled" in codes(audit.audit({"broker_heartbeat": 0}))


def test_every_rabbitmq_finding_names_a_shipped_rabbitmq_scenario() -> None:
    installed = Path(str(resources.files("celery_chaos.scenarios"))) / "rabbitmq"
    names = {s.name for s in load_suite([installed])}
    from kombu import Queue

    risky = RABBIT_SAFE | {
        "task_time_limit": 7200,
        "broker_heartbeat": 0,
        "task_default_delivery_mode": 1,
        "task_queues": [Queue("celery", queue_arguments={"x-queue-type": "quorum"})],
    }
    named = {f.scenario for f in audit.audit(risky, max_eta=99999) if f.code in RABBIT_CODES}
    assert named - {None} <= names and len(named - {None}) >= 4


def test_task_queues_as_a_mapping_are_read_too() -> None:
    queues = {"celery": {"queue_arguments": {"x-queue-type": "quorum", "x-delivery-limit": 2}}}
    assert "rabbitmq-quorum-delivery-limit" in codes(
        audit.audit(RABBIT_SAFE | {"task_queues": queues})
    )
    transient = {"celery": {"durable": False}}
    assert "rabbitmq-transient" in codes(audit.audit(RABBIT_SAFE | {"task_queues": transient}))


def test_a_long_restore_mutex_expiry_with_acks_late_on_redis_is_noted() -> None:
    found = finding(audit.audit(SAFE), "restore-mutex-held-by-killed-worker")
    assert found.level == audit.INFO and "300s" in found.setting and found.scenario is None
    bounded = SAFE | {"broker_transport_options": {"visibility_timeout": 600,
                                                   "unacked_mutex_expire": 10}}  # fmt: skip
    assert "restore-mutex-held-by-killed-worker" not in codes(audit.audit(bounded))
    assert "restore-mutex-held-by-killed-worker" not in codes(audit.audit(REDIS))  # acks early


def test_every_finding_that_states_the_visibility_timeout_states_the_sweep(monkeypatch) -> None:
    """A dead worker's message comes back at the first restore sweep after the visibility
    timeout: wherever audit quotes the one, it quotes the other (issue 17, item 7)."""
    from celery_chaos.tools.audit import settings as audit_settings

    monkeypatch.setattr(audit_settings, "installed_kombu", lambda: "5.7.0")
    transport = {"visibility_timeout": 15, "unacked_restore_interval": 2}
    config = SAFE | {"broker_transport_options": transport, "worker_prefetch_multiplier": 4}
    tasks = {"t": {"acks_late": True, "time_limit": 30}}
    findings = audit.audit(config, tasks, max_eta=60)
    quoting = [f for f in findings if "visibility_timeout=" in f.setting]
    assert {f.code for f in quoting} >= {
        "visibility-shorter-than-task",
        "visibility-shorter-than-eta",
        "ack-late-kill-worker-default-visibility",
    }
    for found in quoting:
        assert "Kombu's restore sweep every 20s (unacked_restore_interval=2s x" in found.setting
    waiting = finding(findings, "ack-late-kill-worker-default-visibility")
    assert "after 15s, at the next restore sweep (up to 20s later)" in waiting.causes
    monkeypatch.setattr(audit_settings, "installed_kombu", lambda: "5.6.2")
    old = finding(audit.audit(config, tasks), "ack-late-kill-worker-default-visibility")
    assert "every 100s" in old.setting and "Kombu before 5.7 ignores both options" in old.setting


def test_one_table_of_celery_defaults_and_it_is_celerys() -> None:
    """The audit reads the core's table (the explanation lines quote the same defaults), and
    every value in it is what celery.app.defaults has."""
    from celery.app.defaults import DEFAULTS
    from celery_chaos.core import explain_facts

    assert audit.CELERY_DEFAULTS is explain_facts.CELERY_DEFAULTS
    for key, value in audit.CELERY_DEFAULTS.items():
        assert DEFAULTS[key] == value, key
