"""One guard for the whole test suite: a test that leaves this process's SIGINT or SIGTERM
disposition changed gets it restored, with a warning naming the test.

Why: tests start ``celery-chaos`` subprocesses and Ctrl-C them; a child inherits an *ignored*
SIGINT (POSIX), so one test leaving SIGINT at ``SIG_IGN`` in an xdist worker made later
interrupt tests in that worker see the harness finish its run (exit 0) instead of 130."""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator

import pytest

GUARDED = (signal.SIGINT, signal.SIGTERM)


def _kernel_view() -> dict[str, int]:
    """This thread's blocked and ignored signal masks as the kernel holds them: a C library can
    change either without Python's ``signal.getsignal`` noticing, and children inherit both."""
    try:
        with open("/proc/thread-self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:
        return {}
    return {name: int(fields[name], 16) for name in ("SigBlk", "SigIgn") if name in fields}


def _guarded_bits(masks: dict[str, int]) -> dict[str, int]:
    bits = sum(1 << (number - 1) for number in GUARDED)
    return {name: mask & bits for name, mask in masks.items()}


@pytest.fixture(autouse=True)
def signal_dispositions_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    before = {number: signal.getsignal(number) for number in GUARDED}
    kernel_before = _guarded_bits(_kernel_view())
    yield
    kernel_after = _guarded_bits(_kernel_view())
    if kernel_after != kernel_before:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, GUARDED)
        for number, handler in before.items():
            if handler is not None:
                signal.signal(number, handler)
        warnings.warn(
            f"{request.node.nodeid} left the kernel's SIGINT/SIGTERM masks changed"
            f" ({kernel_before} -> {kernel_after}); restored",
            stacklevel=1,
        )
    for number, handler in before.items():
        if signal.getsignal(number) is not handler and handler is not None:
            signal.signal(number, handler)
            warnings.warn(
                f"{request.node.nodeid} left {signal.Signals(number).name} changed; restored",
                stacklevel=1,
            )


def _environment() -> dict[str, str]:
    """``os.environ`` without what pytest itself sets per phase."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """The environment variables and working folder every later test's subprocesses inherit:
    a test that leaves either changed (e.g. a ``VIRTUAL_ENV`` or ``CHAOS_*`` variable, which the
    harness reads at start) gets them restored, with a warning naming the test. A hook around
    the whole protocol, not a fixture: a plugin's autouse fixture may set ``monkeypatch`` up
    before ours (pytest-django does), and its undo would then come after our check."""
    environ, cwd = _environment(), os.getcwd()
    outcome = yield
    if _environment() != environ:
        changed = sorted(set(environ.items()) ^ set(_environment().items()))
        names = sorted({name for name, _ in changed})
        for name in names:
            if name in environ:
                os.environ[name] = environ[name]
            else:
                os.environ.pop(name, None)
        warnings.warn(f"{item.nodeid} left environment {names} changed; restored", stacklevel=1)
    if os.getcwd() != cwd:
        os.chdir(cwd)
        warnings.warn(f"{item.nodeid} left the working folder changed; restored", stacklevel=1)
    return outcome
