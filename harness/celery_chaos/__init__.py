"""celery-chaos: prove whether a Celery deployment survives worker death.

Architecture (Jepsen's): a *backend* provisions broker, ledger and workers; a *workload* says
what is dispatched; the *nemesis* injects faults at triggers; the *history* is the ordered record
of events; the *checker* turns the history into verdicts; *reports* render them.

The public surface is what an instrumented app needs; every other module is private::

    from celery_chaos import install, checkpoint, side_effect, apply_once, lock, store

Those names are loaded lazily, so ``import celery_chaos`` (the pytest plugin, the CLI) does not
import Celery or Redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

__all__ = [
    "LockHeld",
    "__version__",
    "apply_once",
    "checkpoint",
    "install",
    "lock",
    "side_effect",
    "store",
]

if TYPE_CHECKING:
    from celery_chaos.agent.instrument import (
        LockHeld,
        apply_once,
        checkpoint,
        install,
        lock,
        side_effect,
        store,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from celery_chaos.agent import instrument

        return getattr(instrument, name)
    raise AttributeError(f"module 'celery_chaos' has no attribute {name!r}")
