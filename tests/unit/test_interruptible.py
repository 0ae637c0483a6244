"""SIGTERM or Ctrl-C during a run: exit 130 even when Python dropped the KeyboardInterrupt the
handler raised (it prints and drops one raised while the main thread runs a ``__del__`` or a GC
callback; seen in CI as a killed run that went on and exited 0)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator

import pytest
from celery_chaos.cli_common import EXIT_INTERRUPTED, interruptible


@pytest.fixture(autouse=True)
def _handlers_restored() -> Iterator[None]:
    """Python's own SIGINT handler during each test, as in a terminal: a test process started
    in the background (as CI's may be) inherits SIGINT ignored. Given back afterwards."""
    before = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for number, handler in before.items():
        signal.signal(number, handler)


def _dropped(number: int) -> Callable[[], str]:
    def work() -> str:
        """The signal arrives where its exception is lost, and the work ends normally."""
        try:
            os.kill(os.getpid(), number)
        except KeyboardInterrupt:
            pass  # as Python does in a __del__
        return "ran to the end"

    return work


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_dropped_interrupt_still_exits_130_and_set_the_runs_flag(number: int) -> None:
    stop = threading.Event()
    with pytest.raises(SystemExit) as exited:
        interruptible(_dropped(number), stop)
    assert exited.value.code == EXIT_INTERRUPTED
    assert stop.is_set()  # the run loop stops on it at its next pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


def test_an_ignored_sigint_stays_ignored() -> None:
    """A background job's SIGINT is ignored by its shell: Ctrl-C in the terminal is not for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seen = []
    assert interruptible(lambda: seen.append(signal.getsignal(signal.SIGINT)) or "done") == "done"
    assert seen == [signal.SIG_IGN]


def test_an_interrupt_that_propagates_exits_130() -> None:
    def work() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as exited:
        interruptible(work, threading.Event())
    assert exited.value.code == EXIT_INTERRUPTED


def test_work_that_ends_without_a_signal_returns_its_result() -> None:
    assert interruptible(lambda: "done", threading.Event()) == "done"
