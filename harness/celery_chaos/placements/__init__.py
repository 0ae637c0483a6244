"""Placements: where the broker's server, the ledger and the workers run (``local`` processes,
``docker`` containers), and the fault primitives on them. ``--backend`` chooses one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from celery_chaos.placements.base import BackendError, MissingExtra, Placement, Unsupported

if TYPE_CHECKING:
    from celery_chaos.core.scenario import Scenario

PLACEMENTS = ("local", "docker")


__all__ = [
    "PLACEMENTS",
    "BackendError",
    "MissingExtra",
    "Placement",
    "Unsupported",
    "make_placement",
]


def make_placement(name: str, scenario: Scenario, run_dir: Path, **options: object) -> Placement:
    """The placement called ``name`` for one scenario run (imported lazily: docker is
    optional)."""
    if name == "local":
        from celery_chaos.placements.local.placement import LocalPlacement

        return LocalPlacement(scenario, run_dir, **options)
    if name == "docker":
        from celery_chaos.placements.docker.placement import DockerPlacement

        return DockerPlacement(scenario, run_dir, **options)
    raise BackendError(
        f"--backend: unknown backend {name!r}; expected one of {', '.join(PLACEMENTS)}"
    )
