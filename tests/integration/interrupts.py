"""What the Ctrl-C tests share: a harness started as a terminal starts it, and the signal state
the kernel holds for it, said when a test's signal did not end it as expected."""

from __future__ import annotations

import signal
from pathlib import Path


def as_from_a_terminal() -> None:
    """``preexec_fn``: SIGINT at its default, as a shell gives a foreground job. A child
    inherits an *ignored* SIGINT (POSIX; a non-interactive shell's background job has one), and
    Python then installs no KeyboardInterrupt handler: the run would ignore Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signal_state(pid: int) -> str:
    """``SigIgn``/``SigCgt``/``SigBlk`` of ``pid`` (hex masks; SIGINT is bit 1), or why not."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as error:
        return f"no signal state for {pid}: {error}"
    wanted = ("SigBlk", "SigIgn", "SigCgt")
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(wanted))
