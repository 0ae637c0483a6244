"""App stacks from PyPI for the install-beside-the-app matrix (issue 18, "Done means" first bullet).

One ``uv venv`` per stack, installed from uv's cache first (so a warm cache downloads nothing),
else the index; with neither the test is skipped, never failed. Commands run there with the
environment of a user's shell in that venv: its ``bin`` first on PATH, nothing of this checkout
on ``sys.path`` and no ``VIRTUAL_ENV`` (``--python`` would default to it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.uv_support import ROOT, cache_first, index_reachable, uv

PYDANTIC_1_STACK = "celery-5.2.7-pydantic-1-fastapi-0.95"
# The stacks of issue 18's "Done means": (a) pydantic 1 + FastAPI 0.95 on Celery 5.2.7, (b) Celery
# 5.4 + Django 4.2 with older pins of what apps commonly pin beside Celery (templates, CLI,
# packaging), (c) the latest releases.
STACKS = {
    PYDANTIC_1_STACK: (
        "celery[redis]==5.2.7", "kombu==5.2.*", "redis==4.0.*", "pydantic==1.10.*",
        "fastapi==0.95.*",
    ),
    "celery-5.4-django-4.2": (
        "celery[redis]==5.4.*", "kombu==5.3.*", "redis==4.6.*", "django==4.2.*",
        "Jinja2==3.0.*", "rich==12.*", "packaging==21.*",
    ),
    "latest": ("celery[redis]", "django", "fastapi", "pydantic"),
}  # fmt: skip
# An app on a Celery older than the harness works with (5.2): installing beside it changes no
# version (celery-chaos asks for no Celery version) and every command refuses at start.
TOO_OLD = ("celery==4.4.7", "pytest==8.*")
# The built-in scenario each stack runs: the default suite's quickest with a kill fault (a pool
# process SIGKILLed mid-task; median 9.8 s locally, benchmarks/results/flakiness-local-*.md).
SCENARIO = "defaults-child-kill"
# An app that runs chaos_env tests has pytest already: that one stays. (Without one, the extra's
# latest pytest may move what the app pins: pytest 9 needs packaging 22+, so stack (b)'s
# packaging 21.3 would become 26.4; the resolution test shows plain celery-chaos keeps it.)
APP_PYTEST = "pytest"
CHAOS_CASE = Path(__file__).parent / "app_stack_files" / "chaos_case.py"


def make_venv(path: Path) -> Path:
    made = uv("venv", "-q", "--python", sys.executable, str(path))
    assert made.returncode == 0, made.stderr
    return path


def install(venv: Path, *requirements: str) -> None:
    done = cache_first("pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                       *requirements)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def freeze(venv: Path) -> dict[str, str]:
    """``name -> version`` of every distribution in ``venv`` (names lower-cased)."""
    done = uv("pip", "freeze", "--python", str(venv / "bin" / "python"))
    assert done.returncode == 0, done.stderr
    pins = (line.split("==", 1) for line in done.stdout.splitlines() if "==" in line)
    return {name.lower(): version for name, version in pins}


def changed(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """What had a version before and another (or none) after."""
    return {
        name: f"{version} -> {after.get(name, 'removed')}"
        for name, version in before.items()
        if after.get(name) != version
    }


@dataclass
class Venv:
    """A virtualenv the way its user has it: commands run from an empty folder there."""

    path: Path
    frozen: dict[str, str] = field(default_factory=dict)

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def env(self) -> dict[str, str]:
        """A user's shell in this venv: its bin first, nothing of the checkout, no CHAOS_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAOS_", "PYTHON"))}
        env.pop("VIRTUAL_ENV", None)
        path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))]
        env["PATH"] = os.pathsep.join([str(self.path / "bin"), *path])
        return env

    def run(self, *argv: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """``argv[0]`` from this venv's bin (``celery-chaos``, ``python``)."""
        command = [str(self.path / "bin" / argv[0]), *argv[1:]]
        return subprocess.run(
            command, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout
        )


@dataclass
class AppStack(Venv):
    """A stack's venv with the wheel installed beside it; ``before`` is its freeze without."""

    name: str = ""
    before: dict[str, str] = field(default_factory=dict)
    check: subprocess.CompletedProcess[str] | None = None


def with_pytest(wheel: Path) -> str:
    """The wheel with its ``pytest`` extra (the plugin and ``chaos_env``), as a requirement."""
    return f"celery-chaos[pytest] @ {wheel.as_uri()}"


def app_stack(name: str, wheel: Path, base: Path) -> AppStack:
    """Stack ``name`` from PyPI with the app's test runner (:data:`APP_PYTEST`), frozen, then
    the wheel with its ``pytest`` extra, frozen again and ``pip check``-ed."""
    venv = make_venv(base / "app")
    install(venv, *STACKS[name], APP_PYTEST)
    before = freeze(venv)
    install(venv, with_pytest(wheel))
    check = uv("pip", "check", "--python", str(venv / "bin" / "python"))
    return AppStack(venv, freeze(venv), name=name, before=before, check=check)


def result_of(report_dir: Path, pattern: str) -> dict:
    """The one ``result.json`` under ``report_dir`` matching ``pattern`` (a glob)."""
    (found,) = report_dir.glob(pattern)
    return json.loads(found.read_text())


def output(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout[-3000:] + done.stderr[-2000:]


# uv's hint when an offline resolution failed only for want of a package the cache lacks.
OFFLINE_MISS = "network was disabled"


def _compile(source: Path, python_version: str, *offline: str) -> subprocess.CompletedProcess:
    return uv("pip", "compile", "-q", "--no-header", "--python-version", python_version,
              str(source), *offline)  # fmt: skip


def _pins(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    lines = (line for line in done.stdout.splitlines() if "==" in line and line[0] != "#")
    pins = (line.split("==", 1) for line in lines)
    return {name.strip().lower(): version.split()[0] for name, version in pins}


def resolve_pair(
    stack: tuple[str, ...], wheel: str, python_version: str, work: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """uv's resolutions of ``stack`` alone and of ``stack`` + ``wheel`` for ``python_version``
    (no interpreter needed): both from the cache when it has all, else both from the index, so
    "latest" means the same in both."""
    alone, beside = work / f"alone-{python_version}.txt", work / f"beside-{python_version}.txt"
    alone.write_text("\n".join(stack) + "\n")
    beside.write_text("\n".join((*stack, wheel)) + "\n")
    done = [_compile(path, python_version, "--offline") for path in (alone, beside)]
    if any(OFFLINE_MISS in d.stderr for d in done):  # not a conflict: the cache lacks a package
        done = [_compile(path, python_version) for path in (alone, beside)]
        if any(d.returncode for d in done) and not index_reachable():
            pytest.skip(f"no package index and not in uv's cache: {done[1].stderr[-300:]}")
    for path, result in zip((alone, beside), done, strict=True):
        assert result.returncode == 0, f"{python_version} {path.name}: {result.stderr[-1500:]}"
    return _pins(done[0]), _pins(done[1])
