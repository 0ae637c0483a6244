"""A worker container that stops with no fault aimed at it is reported, once, with how it ended
and the log lines that explain it (the history's ``worker_exit``, the ``worker_crashes``
finding), as on the local backend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from celery_chaos.core.scenario import load_file
from celery_chaos.placements.docker.placement import DockerPlacement

from tests.integration.docker_support import require_images

pytestmark = [pytest.mark.integration, pytest.mark.docker]
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "03-ack-late-reject-child-kill.yaml"


def test_a_worker_container_killed_outside_a_fault_is_reaped_once_with_its_signal(
    tmp_path: Path,
) -> None:
    require_images()
    backend = DockerPlacement(load_file(SCENARIO), tmp_path)
    backend.check_runnable()
    with backend:
        backend.start()
        (worker,) = backend.workers
        assert backend.reap_worker_exits() == []  # running: nothing to report
        container = worker.handle.get_wrapped_container()
        container.kill(signal="SIGKILL")  # not through the nemesis
        container.wait(timeout=20)  # the engine has seen it stop
        backend._exits_checked = time.monotonic()  # a look just happened: the next is rate-limited
        assert backend.reap_worker_exits() == []
        (exit,) = backend.reap_worker_exits(force=True)  # the run's last look is never skipped
        assert (exit.worker, exit.signal, exit.exitcode) == (worker.name, 9, None)
        assert exit.log_tail  # what the worker last said
        time.sleep(0.3)
        assert backend.reap_worker_exits() == []  # reported once
