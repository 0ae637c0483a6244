"""Fresh ``uv venv`` environments with this project's wheel, for tests that need other versions of
its dependencies than the test run's own (e.g. pydantic 1, issue 18).

Packages come from uv's cache first (a warm cache downloads nothing), else the index; with
neither the test is skipped, never failed. Commands run there as from a user's shell in that
venv: its ``bin`` first on PATH, nothing of this checkout on ``sys.path``, no ``VIRTUAL_ENV``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "reports", "*.egg-info", "__pycache__", ".*_cache"
)


def uv(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    if UV is None:
        pytest.skip("uv makes the environments (pip install uv)")
    return subprocess.run([UV, *argv], capture_output=True, text=True, timeout=timeout)


def index_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


def cache_first(*command: str) -> subprocess.CompletedProcess[str]:
    """A uv command from the cache alone when that suffices, else with the index; neither: skip."""
    done = uv(*command, "--offline")
    if done.returncode == 0:
        return done
    online = uv(*command)
    if online.returncode != 0 and not index_reachable():
        pytest.skip(f"no package index and not in uv's cache: {online.stderr[-300:]}")
    return online


def build_wheel(base: Path) -> Path:
    """This project's wheel, built from a copy of the sources (no build/ left in the checkout)."""
    shutil.copytree(ROOT, base / "src", ignore=NOT_SOURCES)
    out = base / "dist"
    built = cache_first(
        "build", "--wheel", "--python", sys.executable, "--out-dir", str(out), str(base / "src")
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = out.glob("celery_chaos-*.whl")
    return wheel


def install(venv: Path, *requirements: str) -> None:
    """A fresh venv at ``venv`` (this test run's Python version) with ``requirements``."""
    made = uv("venv", "-q", "--python", sys.executable, str(venv))
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    done = cache_first("pip", "install", "-q", "--python", python, *requirements)
    assert done.returncode == 0, done.stderr[-2000:]


def shell_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell with ``venv`` activated (nothing of this checkout)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_in(
    venv: Path, *argv: str, cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``argv`` (a command of the venv's ``bin``, or ``python``) run as a user would run it."""
    command = [str(venv / "bin" / argv[0]), *argv[1:]]
    return subprocess.run(
        command, cwd=cwd, env=shell_env(venv), capture_output=True, text=True, timeout=timeout
    )
