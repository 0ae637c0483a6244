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
