"""Guards for the whole test suite: a test that leaves this process's SIGINT or SIGTERM
disposition, its environment or its working folder changed gets them restored, with a warning
naming the test. And the order files start in: the slowest first (``file_seconds.json``).

Why: tests start ``celery-chaos`` subprocesses and Ctrl-C them; a child inherits an *ignored*
SIGINT (POSIX), so one test leaving SIGINT at ``SIG_IGN`` in an xdist worker made later
interrupt tests in that worker see the harness finish its run (exit 0) instead of 130."""

from __future__ import annotations

import json
import os
import signal
import statistics
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

GUARDED = (signal.SIGINT, signal.SIGTERM)
# Each test file's summed seconds in a CI run (benchmarks/ci_wall.py --write-order).
FILE_SECONDS = Path(__file__).with_name("file_seconds.json")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first, each file's tests in their own order. With ``--dist loadfile
    --no-loadscope-reorder`` (pyproject.toml) xdist hands whole files out in this order, so no
    long file is left to run alone while the other processes are done (xdist's own order, the
    files with the most tests first, left 2-3 min files such as the docker Sentinel tests for
    last). A file not in the table counts as the median one."""
    seconds: dict[str, float] = json.loads(FILE_SECONDS.read_text())["seconds"]
    usual = statistics.median(seconds.values())
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::", 1)[0], usual))


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
