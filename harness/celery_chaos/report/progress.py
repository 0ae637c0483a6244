"""The live lines of ``celery-chaos run --jobs N`` on a terminal: one per running scenario.

Each line shows the scenario, how long it has run and its latest log line, cut to the terminal's
width (never wrapped). The finished scenarios' output is printed above them in suite order by
the caller; off a terminal there are no live lines at all, only those plain lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

Progress = Callable[[str, str | None], None]


class LiveLines:
    """What is running now: scenario -> (started, latest line); fed from the scenario threads."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[float, str]] = {}
        self.lock = threading.Lock()

    def update(self, name: str, line: str | None) -> None:
        """``line`` None: the scenario finished and its live line goes."""
        with self.lock:
            if line is None:
                self.running.pop(name, None)
                return
            started = self.running.get(name, (time.monotonic(), ""))[0]
            self.running[name] = (started, " ".join(line.split()))

    def render(self) -> RenderableType:
        now = time.monotonic()
        with self.lock:
            rows = sorted(self.running.items(), key=lambda item: item[1][0])
        return Group(
            *(
                Text.assemble(
                    ("running ", "cyan"),
                    (name, "bold"),
                    f" {now - started:5.1f}s  ",
                    (latest, "dim"),
                    no_wrap=True,
                    overflow="ellipsis",
                )
                for name, (started, latest) in rows
            )
        )


@contextmanager
def live_progress(console: Console, enabled: bool) -> Iterator[Progress | None]:
    """A progress callback showing live lines while the block runs; None when not ``enabled``
    (not a terminal, or one scenario at a time: the log itself is live then)."""
    if not enabled:
        yield None
        return
    lines = LiveLines()
    with Live(console=console, get_renderable=lines.render, refresh_per_second=4, transient=True):
        yield lines.update
