"""The settings a worker really runs with, as its ``worker_ready`` event reports them.

Explanations say why a task was lost "in the user's settings": for an app the harness does not
import (any app but the sample), only the worker knows its effective ``task_acks_late`` or
visibility timeout. Only these keys are reported, only plain values, never URLs or credentials.
"""

from __future__ import annotations

from typing import Any

# The settings explanations read (core.explain_facts.CELERY_DEFAULTS, without URLs and queues).
REPORTED = (
    "task_acks_late",
    "task_reject_on_worker_lost",
    "task_retry_on_worker_lost",
    "task_acks_on_failure_or_timeout",
    "task_time_limit",
    "task_soft_time_limit",
    "worker_prefetch_multiplier",
    "worker_soft_shutdown_timeout",
    "worker_enable_soft_shutdown_on_idle",
    "broker_heartbeat",
    "task_default_delivery_mode",
)
# Of ``broker_transport_options``: what Kombu's Redis restore sweep runs on.
TRANSPORT_REPORTED = ("visibility_timeout", "unacked_restore_interval", "unacked_restore_throttle")
PLAIN = (bool, int, float, str, type(None))


def _plain(value: Any) -> bool:
    return isinstance(value, PLAIN)


def effective_settings(app: Any) -> dict[str, Any]:
    """The reported keys as ``app.conf`` resolves them (the app's value, or Celery's default);
    a key this Celery does not know is left out."""
    conf = getattr(app, "conf", None)
    if conf is None:
        return {}
    found: dict[str, Any] = {}
    for key in REPORTED:
        try:
            value = conf[key]
        except (KeyError, AttributeError):
            continue
        if _plain(value):
            found[key] = value
    transport = conf.get("broker_transport_options") or {}
    found["broker_transport_options"] = {
        key: transport[key]
        for key in TRANSPORT_REPORTED
        if key in transport and _plain(transport[key])
    }
    return found
