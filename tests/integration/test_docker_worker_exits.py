"""A worker container that stops with no fault aimed at it is reported, once, with how it ended
and the log lines that explain it (the history's ``worker_exit``, the ``worker_crashes``
finding), as on the local backend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from celery_chaos.backends.docker.backend import DockerBackend
from celery_chaos.core.scenario import load_file

from tests.integration.docker_support import require_images

pytestmark = [pytest.mark.integration, pytest.mark.docker]
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "03-ack-late-reject-child-kill.yaml"


def test_a_worker_container_killed_outside_a_fault_is_reaped_once_with_its_signal(
    tmp_path: Path,
) -> None:
    require_images()
    backend = DockerBackend(load_file(SCENARIO), tmp_path)
    backend.check_runnable()
    with backend:
        backend.start()
        (worker,) = backend.workers
        assert backend.reap_worker_exits() == []  # running: nothing to report
        worker.handle.get_wrapped_container().kill(signal="SIGKILL")  # not through the nemesis
        deadline, exits = time.monotonic() + 20, []
        while not exits and time.monotonic() < deadline:
            exits = backend.reap_worker_exits()
            time.sleep(0.05)
        (exit,) = exits
        assert (exit.worker, exit.signal, exit.exitcode) == (worker.name, 9, None)
        assert exit.log_tail  # what the worker last said
        time.sleep(0.3)
        assert backend.reap_worker_exits() == []  # reported once
