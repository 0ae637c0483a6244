"""What docker tests need: an engine and the images. Without them a test is skipped on a laptop
but fails on CI (``CI=true``), where .ci/run must have provided both.

.ci/run builds the images in the background while the first tests run (issue 22: a fresh
machine's image build is 1-2 min of CI) and names the file its build's exit status will be
written to in ``CHAOS_TEST_IMAGES_BUILD``: a docker test first waits for that file."""

from __future__ import annotations

import os
import time
from pathlib import Path

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


IMAGES_BUILD_ENV = "CHAOS_TEST_IMAGES_BUILD"
IMAGES_BUILD_DEADLINE = 1200.0  # s: a first offline build is ~2 min; a stuck one fails the test


def wait_for_image_build() -> None:
    """Where .ci/run builds the images beside the tests: wait until the build ended (its exit
    status written), and fail with the end of its log if it failed."""
    status_file = os.environ.get(IMAGES_BUILD_ENV)
    if not status_file:
        return
    status, end = Path(status_file), time.monotonic() + IMAGES_BUILD_DEADLINE
    while not status.exists():
        if time.monotonic() > end:
            pytest.fail(f"the image build .ci/run started did not end in {IMAGES_BUILD_DEADLINE}s")
        time.sleep(0.5)
    code = status.read_text().strip()
    if code != "0":
        log = Path(f"{status_file}.log")
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
        pytest.fail(f"the image build .ci/run started failed (exit {code}): {tail}")


def require_images() -> None:
    """An engine that answers and the default images built."""
    wait_for_image_build()
    ok, reason = engine_available()
    if not ok:
        unavailable(reason)
    client = docker_client()
    have = {tag for image in client.images.list() for tag in image.tags}
    missing = sorted({DEFAULT_WORKER_IMAGE, DEFAULT_REDIS_IMAGE} - have)
    if missing:
        unavailable(f"images not built: {', '.join(missing)}")
