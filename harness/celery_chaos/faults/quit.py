"""``quit``: SIGQUIT to the worker's main process (cold shutdown)."""

from __future__ import annotations

from celery_chaos.faults.base import DOCKER, LOCAL, FaultKind, Repro, StormRule, signal_handler

KIND = FaultKind(
    "quit",
    "SIGQUIT to the worker (cold shutdown)",
    signal_handler("SIGQUIT"),
    blame="worker",
    storm=StormRule("death"),
    repro=Repro(replacement=True),
    how={
        LOCAL: "SIGQUIT (cold shutdown)",
        DOCKER: "signal to the container",
    },
)
