"""Placements: where the broker's server, the ledger and the workers run (``local`` processes,
``docker`` containers), and the fault primitives on them. ``--backend`` chooses one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery_chaos.core.scenario import Scenario
    from celery_chaos.placements.base import BackendError, MissingExtra, Placement, Unsupported

# Loaded on first use: a run's watchdog (``python -m celery_chaos.placements.local.watchdog``)
# imports this package too, and base.py's imports (scenario schema, brokers, Celery) cost ~0.5 s
# of CPU per run in a process that only needs psutil.
_FROM_BASE = ("BackendError", "MissingExtra", "Placement", "Unsupported")

PLACEMENTS = ("local", "docker")


__all__ = [
    "PLACEMENTS",
    "BackendError",
    "MissingExtra",
    "Placement",
    "Unsupported",
    "make_placement",
    "shared_by_suite",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        from celery_chaos.placements import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_placement(name: str, scenario: Scenario, run_dir: Path, **options: object) -> Placement:
    """The placement called ``name`` for one scenario run (imported lazily: docker is
    optional)."""
    if name == "local":
        from celery_chaos.placements.local.placement import LocalPlacement

        return LocalPlacement(scenario, run_dir, **options)
    if name == "docker":
        from celery_chaos.placements.docker.placement import DockerPlacement

        return DockerPlacement(scenario, run_dir, **options)
    from celery_chaos.placements.base import BackendError

    raise BackendError(
        f"--backend: unknown backend {name!r}; expected one of {', '.join(PLACEMENTS)}"
    )


@contextmanager
def shared_by_suite(name: str, scenarios: list[Scenario]) -> Iterator[dict[str, object]]:
    """What the scenarios of one suite share on placement ``name``, as an option of its
    placements, closed with the suite: one RabbitMQ node (a local process or a container per
    broker image) whose vhosts the scenarios that can use one run in (``sharing.py``)."""
    from celery_chaos.placements.sharing import can_share

    if name not in PLACEMENTS or not any(can_share(scenario) for scenario in scenarios):
        yield {}
        return
    if name == "local":
        from celery_chaos.placements.local.rabbitmq_shared import SharedRabbitMQ as Shared
    else:
        try:  # the docker extra may be missing: each scenario then says so itself
            from celery_chaos.placements.docker.rabbitmq_shared import (
                SharedRabbitMQContainers as Shared,
            )
        except ImportError:
            yield {}
            return
    with Shared() as shared:
        yield {"shared_rabbitmq": shared}
