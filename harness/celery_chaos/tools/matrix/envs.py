"""One virtual environment per version set, built with uv and cached between runs.

The environment holds the chosen Celery stack only; the agent (its modules only,
``run.interpreter.AGENT_MODULES``, plus the sample app) is copied once per matrix run into a
folder the workers get on ``PYTHONPATH``, so a cached environment never carries a stale agent.
Offline: ``find_links`` (a wheelhouse) and/or ``index_url`` (a local index), with ``offline``
forbidding any other source.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from celery_chaos.tools.matrix.version_sets import VersionSet

ENV_DIR_ENV = "CELERY_CHAOS_ENV_DIR"
COMPLETE_MARKER = ".celery-chaos-complete"


class EnvBuildError(RuntimeError):
    """An environment could not be built; the message carries uv's own last lines."""


@dataclass(frozen=True)
class Sources:
    """Where packages come from (PyPI by default)."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    offline: bool = False

    def uv_arguments(self) -> list[str]:
        arguments = [item for link in self.find_links for item in ("--find-links", link)]
        if self.index_url:
            arguments += ["--index-url", self.index_url]
        if self.offline:
            arguments += ["--offline"] + (["--no-index"] if not self.index_url else [])
        return arguments


@dataclass
class WorkerEnv:
    version_set: VersionSet
    path: Path
    build_seconds: float = 0.0
    cached: bool = False
    log: list[str] = field(default_factory=list)

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")


def default_env_root() -> Path:
    configured = os.environ.get(ENV_DIR_ENV)
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "celery-chaos" / "envs"


def env_key(version_set: VersionSet, sources: Sources) -> str:
    """Same Python, requirements and sources -> same environment."""
    material = json.dumps(
        [sys.executable, platform.python_version(), version_set.requirements(), vars(sources)],
        sort_keys=True,
        default=list,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def uv_executable() -> str:
    """The uv to build environments with, looked up where ``pip install 'celery-chaos[matrix]'``
    puts it even when its environment is not activated (so not on PATH): beside this Python
    first, then wherever the ``uv`` package's own lookup finds it (e.g. a ``--user`` install),
    then PATH."""
    beside = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    try:
        from uv import find_uv_bin  # the ``uv`` wheel's own module

        return str(find_uv_bin())
    except (ImportError, OSError):  # not installed, or its binary is missing (FileNotFoundError)
        pass
    found = shutil.which("uv")
    if found is None:
        raise EnvBuildError(
            f"uv not found (beside {sys.executable}, by the uv package, on PATH): install it"
            " with pip install 'celery-chaos[matrix]' to build matrix envs"
        )
    return found


def _uv(arguments: list[str], env_path: Path | None = None) -> str:
    environment = dict(os.environ)
    if env_path is not None:
        environment["VIRTUAL_ENV"] = str(env_path)
    completed = subprocess.run(
        [uv_executable(), *arguments], capture_output=True, text=True, env=environment, check=False
    )
    if completed.returncode != 0:
        lines = [line.strip() for line in (completed.stderr or completed.stdout).splitlines()]
        tail = " ".join([line for line in lines if line][-3:])
        raise EnvBuildError(f"uv {' '.join(arguments[:2])}: {tail}")
    return completed.stderr + completed.stdout


def build_env(version_set: VersionSet, sources: Sources, root: Path | None = None) -> WorkerEnv:
    """The environment for ``version_set``: reused when a complete one exists, else built."""
    import time

    began = time.monotonic()
    path = (root or default_env_root()) / env_key(version_set, sources)
    if (path / COMPLETE_MARKER).exists():
        return WorkerEnv(version_set, path, round(time.monotonic() - began, 3), cached=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        _uv(["venv", "--quiet", "--python", sys.executable, str(partial)])
        output = _uv(
            ["pip", "install", "--quiet", *sources.uv_arguments(), *version_set.requirements()],
            env_path=partial,
        )
    except EnvBuildError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise EnvBuildError(f"{version_set.label}: {error}") from None
    (partial / COMPLETE_MARKER).write_text(json.dumps(version_set.requirements()))
    _install_atomically(partial, path)
    return WorkerEnv(version_set, path, round(time.monotonic() - began, 3), log=[output])


def _install_atomically(partial: Path, path: Path) -> None:
    """Move the finished environment in place; another run that finished first wins.
    (uv venvs are relocatable: ``bin/python`` is a symlink, scripts use a relative shebang.)"""
    try:
        partial.rename(path)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not (path / COMPLETE_MARKER).exists():
            raise EnvBuildError(f"{path}: exists but is not a complete environment") from None


def stage_agent(destination: Path) -> Path:
    """The agent's modules (and the sample app) in ``destination``: the folder to put on the
    workers' ``PYTHONPATH``, the same ``--python`` stages (run.interpreter.stage_agent)."""
    from celery_chaos.run.interpreter import stage_agent as stage

    return stage(destination)
