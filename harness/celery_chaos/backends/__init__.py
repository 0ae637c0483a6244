"""Backends provision the broker, the ledger and the workers, and carry out faults."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from celery_chaos.backends.base import Backend, BackendError, Unsupported

if TYPE_CHECKING:
    from celery_chaos.core.scenario import Scenario

BACKENDS = ("local", "docker")


class MissingExtra(Unsupported):
    """The scenario needs an optional extra that is not installed (e.g. a gevent pool): the run
    reports it ``skipped`` with the install hint, unless ``--require-all`` (README: Exit codes)."""


__all__ = ["BACKENDS", "Backend", "BackendError", "MissingExtra", "Unsupported", "make_backend"]


def make_backend(name: str, scenario: Scenario, run_dir: Path, **options: object) -> Backend:
    """The backend called ``name`` for one scenario run (imported lazily: docker is optional)."""
    if name == "local":
        from celery_chaos.backends.local.backend import LocalBackend

        return LocalBackend(scenario, run_dir, **options)
    if name == "docker":
        from celery_chaos.backends.docker.backend import DockerBackend

        return DockerBackend(scenario, run_dir, **options)
    raise BackendError(
        f"--backend: unknown backend {name!r}; expected one of {', '.join(BACKENDS)}"
    )
