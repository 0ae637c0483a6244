"""What docker tests need: an engine and the images. Without them a test is skipped on a laptop
but fails on CI (``CI=true``), where .ci/run must have provided both."""

from __future__ import annotations

import os

import pytest
from celery_chaos.placements.docker.images import (
    DEFAULT_REDIS_IMAGE,
    DEFAULT_WORKER_IMAGE,
    docker_client,
    engine_available,
)


def unavailable(reason: str) -> None:
    """Skip without Docker, but fail on CI: there a missing engine is a broken setup."""
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"CI=true and {reason}"
            " (run .ci/docker-setup.sh and `celery-chaos images build --offline`)"
        )
    pytest.skip(reason)


def require_images() -> None:
    """An engine that answers and the default images built."""
    ok, reason = engine_available()
    if not ok:
        unavailable(reason)
    client = docker_client()
    have = {tag for image in client.images.list() for tag in image.tags}
    missing = sorted({DEFAULT_WORKER_IMAGE, DEFAULT_REDIS_IMAGE} - have)
    if missing:
        unavailable(f"images not built: {', '.join(missing)}")
