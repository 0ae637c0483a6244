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


@pytest.fixture(autouse=True)
def signal_dispositions_restored(request: pytest.FixtureRequest) -> Iterator[None]:
    before = {number: signal.getsignal(number) for number in GUARDED}
    yield
    for number, handler in before.items():
        if signal.getsignal(number) is not handler and handler is not None:
            signal.signal(number, handler)
            warnings.warn(
                f"{request.node.nodeid} left {signal.Signals(number).name} changed; restored",
                stacklevel=1,
            )
