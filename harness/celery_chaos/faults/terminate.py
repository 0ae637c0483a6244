"""``terminate``: SIGTERM to the worker's main process (warm shutdown)."""

from __future__ import annotations

from celery_chaos.faults.base import DOCKER, LOCAL, FaultKind, Repro, StormRule, signal_handler

KIND = FaultKind(
    "terminate",
    "SIGTERM to the worker (warm shutdown)",
    signal_handler("SIGTERM"),
    blame="worker",
    storm=StormRule("death"),
    repro=Repro(replacement=True),
    how={
        LOCAL: "SIGTERM to the worker main process (warm shutdown)",
        DOCKER: "signal to the container",
    },
)
