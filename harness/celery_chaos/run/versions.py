"""The versions a run was made with: a verdict about Celery is a verdict about *these* versions.

Every result.json carries them and ``celery-chaos run`` prints them first. The harness's own
versions are the start; the workers' (reported by the agent in ``worker_ready``) replace them,
since the workers may run from another environment (``celery-chaos matrix``). The broker server's
version is read from the broker itself (``Broker.version``: each broker kind knows how).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

LIBRARIES = ("celery", "kombu", "billiard", "redis")
# The harness's own versions beside the workers' carry this prefix (``harness_celery``...).
HARNESS_PREFIX = "harness_"
# One line when the dispatching client (this process) runs another Celery than the workers.
MISMATCH = "client_mismatch"


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Python, the Celery stack in this process (redis-py as ``redis-py``) and celery-chaos."""
    from celery_chaos import __version__

    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        found["redis-py" if name == "redis" else name] = _installed(name)
    found["celery_chaos"] = __version__
    return found


def worker_versions(events: list[dict[str, Any]]) -> dict[str, str | None]:
    """The library versions the workers reported in ``worker_ready`` (the first that says):
    verdicts and ``expect_when`` are about the workers' Celery, which a matrix run or
    ``--python`` runs from another environment than the harness's. Beside them the harness's
    own (``harness_*``), and :data:`MISMATCH` when the client dispatching the tasks runs
    another Celery or Kombu than the workers. Empty when no worker reported them."""
    for event in events:
        reported = event.get("versions") if event.get("type") == "worker_ready" else None
        if isinstance(reported, dict):
            workers = {key: value for key, value in reported.items() if key != "python"}
            workers["worker_python"] = reported.get("python")
            own = library_versions()
            found = workers | {
                HARNESS_PREFIX + key: own.get(key)
                for key in ("python", "celery", "kombu", "billiard", "redis-py")
            }
            line = mismatch(own, workers)
            return found | ({MISMATCH: line} if line else {})
    return {}


def mismatch(client: dict[str, Any], workers: dict[str, Any]) -> str | None:
    """``the client dispatching tasks runs celery 5.7.0, the workers 5.2.7`` (and Kombu), or
    None when they agree: messages are written by one Celery and read by the other."""
    differ = [
        f"{name} {client.get(name)}, the workers {workers.get(name)}"
        for name in ("celery", "kombu")
        if workers.get(name) and client.get(name) != workers.get(name)
    ]
    if not differ:
        return None
    return "the client dispatching tasks runs " + "; ".join(differ)


# Settings Celery 5.2.7 lacks, by the first release that has them, measured from the settings
# list (celery.app.defaults.DEFAULTS) of 5.2.7, 5.3.6, 5.4.0, 5.5.3, 5.6.3 and 5.7.0 (no setting
# was removed between them). A worker on an older Celery ignores such a setting silently, so the
# run would test the default and call it the setting's behaviour.
CELERY_SINCE = dict.fromkeys(
    ("beat_cron_starting_deadline", "broker_channel_error_retry",
     "broker_connection_retry_on_startup", "cassandra_bundle_path", "security_key_password",
     "task_allow_error_cb_on_chord_header"), "5.3",
) | dict.fromkeys(
    ("gcs_base_path", "gcs_bucket", "gcs_project", "gcs_ttl",
     "worker_enable_prefetch_count_reduction"), "5.4",
) | dict.fromkeys(
    ("broker_native_delayed_delivery_queue_type", "database_create_tables_at_setup",
     "task_default_queue_type", "worker_detect_quorum_queues",
     "worker_enable_soft_shutdown_on_idle", "worker_soft_shutdown_timeout"), "5.5",
) | dict.fromkeys(
    ("control_queue_durable", "control_queue_exclusive", "event_queue_durable",
     "event_queue_exclusive", "task_create_missing_queue_exchange_type",
     "task_create_missing_queue_type", "worker_disable_prefetch", "worker_eta_task_limit"), "5.6",
) | dict.fromkeys(
    ("beat_enable_remote_control", "beat_remote_control_max_tick_age",
     "broker_pool_acquire_timeout", "database_engine_callback", "result_chord_expires",
     "result_failure_expires", "task_acks_on_failure", "task_acks_on_timeout",
     "task_repr_maxlevels", "task_retry_on_worker_lost", "worker_log_datefmt",
     "worker_pool_start_method", "worker_task_log_datefmt"), "5.7",
)  # fmt: skip
# Not a rule for Kombu's transport options (``unacked_restore_*``, read from Kombu 5.7): an older
# Kombu ignores them, yet measured on Kombu 5.6.2 the fast-restore scenario (04a) still met its
# expectation, so they do not make a scenario unrunnable; the one that is about them (20) says
# what older Kombu does in its ``expect_when``.


def needs_newer(scenario: Any, context: dict[str, str | None]) -> str | None:
    """Why ``scenario`` cannot run on workers with ``context``'s versions (as ``expect_when``
    reads them): a setting their Celery does not have yet (it would be ignored, and the default
    tested); None when it can, or when an ``expect_when`` entry on Celery holds for them (it says
    what happens there, e.g. ``celery: <5.5``)."""
    from packaging.version import InvalidVersion, Version

    from celery_chaos.core.expectations import _holds

    actual = context.get("celery")
    covered = any(
        "celery" in rule.when
        and all(_holds(key, value, context) for key, value in rule.when.items())
        for rule in scenario.expect_when
    )
    for key in scenario.celery:
        since = CELERY_SINCE.get(key)
        try:
            older = since is not None and actual is not None and Version(actual) < Version(since)
        except InvalidVersion:
            older = False
        if older and not covered:
            return (
                f"celery.{key} needs Celery {since}+; the workers run {actual}"
                f" (no expect_when on celery covers {actual})"
            )
    return None


def broker_version(placement: Any) -> dict[str, str | None]:
    """``{"broker": "redis 7.2.4"}`` read from the running broker; None when it cannot say."""
    broker = placement.broker
    try:
        version = broker.version()
    except Exception:  # a version is context, never a reason to fail a run
        version = None
    return {"broker": f"{broker.kind} {version}" if version else None}


def header(versions: dict[str, Any]) -> str:
    """One console line: ``python 3.12.1, celery 5.4.0, ...``."""
    return ", ".join(
        f"{name} {value}"
        for name, value in versions.items()
        if value and not name.startswith(HARNESS_PREFIX) and name != MISMATCH
    )
