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
    verdicts and ``expect_when`` are about the workers' Celery, which a matrix run installs in
    another environment than the harness's. Empty when no worker reported them."""
    for event in events:
        reported = event.get("versions") if event.get("type") == "worker_ready" else None
        if isinstance(reported, dict):
            return {key: value for key, value in reported.items() if key != "python"} | {
                "worker_python": reported.get("python")
            }
    return {}


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
    return ", ".join(f"{name} {value}" for name, value in versions.items() if value)
