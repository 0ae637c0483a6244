"""One guard for the whole test suite: a test that leaves this process's SIGINT or SIGTERM
disposition changed gets it restored, with a warning naming the test.

Why: tests start ``celery-chaos`` subprocesses and Ctrl-C them; a child inherits an *ignored*
SIGINT (POSIX), so one test leaving SIGINT at ``SIG_IGN`` in an xdist worker made later
interrupt tests in that worker see the harness finish its run (exit 0) instead of 130."""

from __future__ import annotations

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
