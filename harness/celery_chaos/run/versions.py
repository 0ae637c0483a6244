"""The versions a run was made with: a verdict about Celery is a verdict about *these* versions.

Every result.json carries them and ``celery-chaos run`` prints them first. The harness's own
versions are the start; the workers' (reported by the agent in ``worker_ready``) replace them,
since the workers may run from another environment (``celery-chaos matrix``). The broker server's
version is read from the broker itself; :data:`BROKER_VERSION_READERS` maps a broker URL scheme
to a reader, so another broker (RabbitMQ) adds one entry.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
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


def _redis_version(backend: Any) -> str | None:
    info = backend.broker_client().info("server")
    return str(info.get("redis_version")) if info.get("redis_version") else None


def _rabbitmq_version(backend: Any) -> str | None:
    """From the AMQP handshake (``server_properties``): no ``rabbitmqctl`` VM to boot."""
    from kombu import Connection

    with Connection(backend.broker_url, connect_timeout=5) as connection:
        connection.connect()
        version = connection.connection.server_properties.get("version")
    return str(version) if version else None


BROKER_VERSION_READERS: dict[str, Callable[[Any], str | None]] = {
    "redis": _redis_version,
    "rediss": _redis_version,
    "amqp": _rabbitmq_version,
    "pyamqp": _rabbitmq_version,
    "amqps": _rabbitmq_version,
}
BROKER_NAMES = {"redis": "redis", "rediss": "redis", "amqp": "rabbitmq", "pyamqp": "rabbitmq"}


def broker_version(backend: Any) -> dict[str, str | None]:
    """``{"broker": "redis 7.2.4"}`` read from the running broker; None when it cannot say."""
    scheme = str(backend.broker_url).split("://", 1)[0]
    reader = BROKER_VERSION_READERS.get(scheme)
    try:
        version = reader(backend) if reader else None
    except Exception:  # a version is context, never a reason to fail a run
        version = None
    return {"broker": f"{BROKER_NAMES.get(scheme, scheme)} {version}" if version else None}


def header(versions: dict[str, Any]) -> str:
    """One console line: ``python 3.12.1, celery 5.4.0, ...``."""
    return ", ".join(f"{name} {value}" for name, value in versions.items() if value)
