"""The docker placement's freeze: a container that refuses ``docker pause`` while it exits
(runc's "unable to freeze", seen in CI) is not a failed run; one that keeps running and keeps
refusing is."""

from __future__ import annotations

import docker.errors
import pytest
from celery_chaos.placements.docker.containers import pause_unless_exited


class Container:
    """The engine's answers, in order: a status per reload, a refusal per pause."""

    def __init__(self, statuses: list[str], refusals: int):
        self.statuses, self.refusals, self.paused = statuses, refusals, False
        self.status = ""

    def reload(self) -> None:
        self.status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def pause(self) -> None:
        if self.refusals:
            self.refusals -= 1
            raise docker.errors.APIError("OCI runtime pause failed: unable to freeze")
        self.paused = True


def test_a_container_that_exited_after_refusing_needs_no_pause() -> None:
    container = Container(["running", "exited"], refusals=1)
    pause_unless_exited(container)
    assert not container.paused


def test_a_running_container_is_paused_once_it_accepts() -> None:
    container = Container(["running"], refusals=2)
    pause_unless_exited(container)
    assert container.paused


def test_a_running_container_that_keeps_refusing_fails_the_freeze() -> None:
    container = Container(["running"], refusals=1_000)
    with pytest.raises(docker.errors.APIError):
        pause_unless_exited(container, deadline=0.3)
    assert not container.paused


def test_an_exited_container_is_left_alone() -> None:
    container = Container(["exited"], refusals=1_000)
    pause_unless_exited(container)
    assert not container.paused
