"""Why a process ended: a fixed vocabulary of codes, each with the human text beside it.

Tools read the code (``process_exit.reason_code`` in the history, ``attempts[].exit_reason_code``
in result.json); people read the text. The codes:

====================  =========================================================================
``oom_kill``          the kernel's OOM killer killed it (the memory cgroup / container limit)
``fault_sigkill``     a fault we injected SIGKILLed it (kill_child, kill_worker, restart_worker)
``fault_sigterm``     a ``terminate`` fault (SIGTERM, warm shutdown) ended its worker
``fault_sigquit``     a ``quit`` fault (SIGQUIT, cold shutdown) ended its worker
``time_limit``        Celery's hard time limit killed the pool process
``worker_lost``       it vanished with no fault injected and no cause we could see (what Celery
                      reports as ``WorkerLostError``)
``shutdown_hung``     Celery logged "Unrecoverable error" and began its shutdown, which had not
                      ended when the run did (seen on RabbitMQ after PRECONDITION_FAILED: blocked
                      in py-amqp's ``channel.close``, waiting for a close-ok that never comes)
``signal:N``          it (or its worker) died of signal N with no fault injected (11: SIGSEGV)
``exit:N``            it (or its worker) exited with status N with no fault injected
====================  =========================================================================
"""

from __future__ import annotations

import re
import signal
from enum import Enum

SIGNAL_PREFIX, EXIT_PREFIX = "signal:", "exit:"


class ExitReason(str, Enum):
    """The fixed codes; ``signal:N`` and ``exit:N`` are built by :func:`by_signal` and
    :func:`by_exit_status`."""

    OOM_KILL = "oom_kill"
    FAULT_SIGKILL = "fault_sigkill"
    FAULT_SIGTERM = "fault_sigterm"
    FAULT_SIGQUIT = "fault_sigquit"
    TIME_LIMIT = "time_limit"
    WORKER_LOST = "worker_lost"
    SHUTDOWN_HUNG = "shutdown_hung"


TEXT = {
    ExitReason.OOM_KILL: "the kernel OOM killer killed it (memory limit)",
    ExitReason.FAULT_SIGKILL: "SIGKILL by an injected fault",
    ExitReason.FAULT_SIGTERM: "SIGTERM (warm shutdown) by an injected fault",
    ExitReason.FAULT_SIGQUIT: "SIGQUIT (cold shutdown) by an injected fault",
    ExitReason.TIME_LIMIT: "Celery's hard time limit killed the pool process",
    ExitReason.WORKER_LOST: "process exited with no fault injected and no cause seen",
    ExitReason.SHUTDOWN_HUNG: (
        "Celery declared an unrecoverable error; its shutdown had not ended when the run did"
    ),
}
_FAULT_SIGNALS = {
    "SIGKILL": ExitReason.FAULT_SIGKILL,
    "SIGTERM": ExitReason.FAULT_SIGTERM,
    "SIGQUIT": ExitReason.FAULT_SIGQUIT,
}
_PATTERN = re.compile(r"^(signal|exit):(\d+)$")


def by_signal(number: int) -> str:
    return f"{SIGNAL_PREFIX}{number}"


def by_exit_status(status: int) -> str:
    return f"{EXIT_PREFIX}{status}"


def by_returncode(returncode: int) -> str:
    """The code for a ``Popen.returncode`` (negative: killed by that signal)."""
    return by_signal(-returncode) if returncode < 0 else by_exit_status(returncode)


def by_fault_signal(signame: str) -> str:
    """The code for a process a fault hit with ``signame`` (e.g. ``SIGKILL``)."""
    return _FAULT_SIGNALS.get(signame, ExitReason.FAULT_SIGKILL).value


def is_code(text: str | None) -> bool:
    """Whether ``text`` is a code of the vocabulary."""
    if text is None:
        return False
    return text in {r.value for r in ExitReason} or _PATTERN.match(text) is not None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe(code: str) -> str:
    """The human text for a code (``signal:11`` -> ``died of SIGSEGV (signal 11), ...``)."""
    match = _PATTERN.match(code)
    if match is None:
        return TEXT.get(ExitReason(code), code) if is_code(code) else code
    kind, number = match.group(1), int(match.group(2))
    if kind == "signal":
        return f"died of {signal_name(number)} (signal {number}) with no fault injected"
    return f"exited with status {number} with no fault injected"


EXPLAINING = re.compile(r"Traceback|Unrecoverable error|CRITICAL|ERROR|Error:|Fatal|fatal")
UNRECOVERABLE = "Unrecoverable error"  # Celery's CRITICAL line before it shuts a worker down


def declared_dead(lines: list[str]) -> bool:
    """Whether Celery logged an unrecoverable error in this worker log: the worker then stops
    consuming and shuts down, whether or not its process ever exits."""
    return any(UNRECOVERABLE in line for line in lines)


def explaining_tail(lines: list[str], limit: int = 20) -> list[str]:
    """The last lines of a log that explain an exit: from the last traceback or error line on
    (at most ``limit`` lines), else simply the last ``limit`` non-empty lines."""
    lines = [line.rstrip() for line in lines if line.strip()]
    for index in range(len(lines) - 1, -1, -1):
        if EXPLAINING.search(lines[index]):
            start = index
            while start > 0 and lines[start - 1].startswith((" ", "\t", "Traceback")):
                start -= 1  # take the whole traceback the error line ends
            if start > 0 and EXPLAINING.search(lines[start - 1]):
                start -= 1  # the log line that introduced the traceback
            return lines[start:][-limit:]
    return lines[-limit:]
