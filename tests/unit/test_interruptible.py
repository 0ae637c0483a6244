"""SIGTERM during a run: exit 130 even when Python dropped the KeyboardInterrupt the handler
raised (it prints and drops one raised while the main thread runs a ``__del__`` or a GC
callback; seen in CI as a killed run that went on and exited 0)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest
from celery_chaos.cli_common import EXIT_INTERRUPTED, interruptible


@pytest.fixture(autouse=True)
def _sigterm_restored() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def _sigterm_dropped() -> str:
    """SIGTERM arrives where its exception is lost, and the work ends normally."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except KeyboardInterrupt:
        pass  # as Python does in a __del__
    return "ran to the end"


def test_a_dropped_interrupt_still_exits_130_and_set_the_runs_flag() -> None:
    stop = threading.Event()
    with pytest.raises(SystemExit) as exited:
        interruptible(_sigterm_dropped, stop)
    assert exited.value.code == EXIT_INTERRUPTED
    assert stop.is_set()  # the run loop stops on it at its next pass


def test_an_interrupt_that_propagates_exits_130() -> None:
    def work() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as exited:
        interruptible(work, threading.Event())
    assert exited.value.code == EXIT_INTERRUPTED


def test_work_that_ends_without_a_signal_returns_its_result() -> None:
    assert interruptible(lambda: "done", threading.Event()) == "done"
