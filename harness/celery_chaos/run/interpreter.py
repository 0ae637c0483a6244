"""``--python``: the app's interpreter, on which its workers, the agent and audit's import run.

Why: a verdict is about the versions the app runs in production. Installed in its own
environment (``uvx``, ``pipx``), the harness must not drag its Celery into the app's; so the
workers start on the app's interpreter with the app's packages, and the agent reaches them on a
``PYTHONPATH`` folder of its own (:func:`stage_agent`) holding only the modules it needs, none of
which imports anything the app lacks (no redis-py, pydantic, yaml, click, rich or jinja2).
Nothing is ever installed into the app's environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The oldest Celery the agent works with (measured: docs/how-to/your-app.md, "Two ways in").
MIN_CELERY = (5, 2)
# The oldest Python the staged agent runs on (measured: 3.9 runs it; 3.8 cannot import it).
MIN_PYTHON = (3, 9)
HARNESS = "the harness's own"
# Modules a worker imports from celery_chaos (the agent, the pure history, the sample app) and
# what audit's import on the app's interpreter needs; tests check it is closed under imports.
AGENT_MODULES = (
    "__init__.py",
    "agent/__init__.py",
    "agent/app_settings.py",
    "agent/apps.py",
    "agent/bootstrap.py",
    "agent/instrument.py",
    "agent/ledger_sync.py",
    "agent/ledger_wire.py",
    "agent/resp.py",
    "agent/results.py",
    "core/__init__.py",
    "core/history.py",
    "tools/audit/app_probe.py",
    "tools/audit/strays.py",
)
# Package folders staged empty (their real ``__init__`` imports the harness's own layers).
EMPTY_PACKAGES = ("tools", "tools/audit")
_PROBE = """
import json, platform, sys
from importlib import metadata
found = {"python": platform.python_version(), "executable": sys.executable}
for key, name in (("celery", "celery"), ("kombu", "kombu"), ("billiard", "billiard"),
                  ("redis-py", "redis")):
    try:
        found[key] = metadata.version(name)
    except metadata.PackageNotFoundError:
        found[key] = None
try:
    import celery
except Exception as error:
    found["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
print(json.dumps(found))
"""


class InterpreterError(ValueError):
    """``--python`` names no usable interpreter; the message is one line naming the option."""


@dataclass
class Interpreter:
    """The interpreter the workers run on, where it came from and what it has installed."""

    path: str
    origin: str  # "--python", "$VIRTUAL_ENV", "./.venv" or HARNESS
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def foreign(self) -> bool:
        """Not the harness's own interpreter: the agent must be staged for it."""
        return self.origin != HARNESS

    def describe(self) -> str:
        """The first line of a command's output when the workers run on another interpreter."""
        shown = ", ".join(
            f"{name} {self.versions.get(name)}"
            for name in ("python", "celery", "kombu", "billiard", "redis-py")
            if self.versions.get(name)
        )
        return f"workers run on {self.path} ({self.origin}): {shown}"


def default_python(cwd: Path, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """The active virtualenv's interpreter, else ``./.venv``'s, else the harness's own."""
    environ = dict(os.environ) if environ is None else environ
    active = environ.get("VIRTUAL_ENV")
    if active and (Path(active) / "bin" / "python").exists():
        return str(Path(active) / "bin" / "python"), "$VIRTUAL_ENV"
    local = cwd / ".venv" / "bin" / "python"
    if local.exists():
        return str(local), "./.venv"
    return sys.executable, HARNESS


def _same(path: str) -> bool:
    """``path`` is the harness's own interpreter (as given, or beside it in its environment)."""
    given, own = Path(path).absolute(), Path(sys.executable).absolute()
    return given == own or (given.parent == own.parent and given.resolve() == own.resolve())


def resolve(option: str | None, cwd: Path, environ: dict[str, str] | None = None) -> Interpreter:
    """The interpreter ``--python`` (or its default) names, probed; raises
    :class:`InterpreterError` when it is not a Python, has no Celery or one too old."""
    path, origin = (option, "--python") if option else default_python(cwd, environ)
    path = absolute(path, cwd)
    if origin != HARNESS and _same(path):
        origin = HARNESS
    if origin == HARNESS:
        from celery_chaos.run.versions import library_versions

        return Interpreter(sys.executable, HARNESS, library_versions())
    label = f"--python {path}" if origin == "--python" else f"--python (default, {origin}) {path}"
    versions = probe(path, label)
    check_celery(versions, label)
    return Interpreter(path, origin, versions)


def absolute(path: str, cwd: Path) -> str:
    """``path`` as the workers can use it from their own folder: relative to ``cwd``, or a bare
    name looked up on PATH (a venv's ``bin/python`` symlink is kept: it makes the venv)."""
    if os.sep not in path and not (cwd / path).exists():
        return shutil.which(path) or path
    return str(cwd / path) if not Path(path).is_absolute() else path


def probe(path: str, label: str) -> dict[str, str | None]:
    """Python's and the Celery stack's versions on interpreter ``path``."""
    if not Path(path).is_file() and shutil.which(path) is None:
        raise InterpreterError(f"{label}: no such file")
    try:
        done = subprocess.run(
            [path, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as error:
        raise InterpreterError(f"{label}: cannot run it ({error.strerror or error})") from None
    except subprocess.TimeoutExpired:
        raise InterpreterError(f"{label}: did not answer in 60 s") from None
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InterpreterError(f"{label}: not a Python 3 interpreter the harness can use") from None
    if found.get("error"):
        raise InterpreterError(f"{label}: Celery is not importable there ({found['error']})")
    return found


def check_celery(versions: dict[str, str | None], label: str) -> None:
    """Refuse a Python or a Celery older than the agent works with, naming both versions."""
    from celery_chaos import __version__

    python = versions.get("python") or ""
    if tuple(int(part) for part in python.split(".")[:2] if part.isdigit()) < MIN_PYTHON:
        oldest = ".".join(map(str, MIN_PYTHON))
        raise InterpreterError(
            f"{label}: Python {python} there; the celery-chaos {__version__} agent needs"
            f" Python {oldest} or later in the workers"
        )
    celery = versions.get("celery") or ""
    try:
        release = tuple(int(part) for part in celery.split(".")[:2])
    except ValueError:
        return  # a development version: let it try
    if release < MIN_CELERY:
        oldest = ".".join(map(str, MIN_CELERY))
        raise InterpreterError(
            f"{label}: Celery {celery} there; celery-chaos {__version__} needs Celery {oldest}"
            " or later (never upgraded for you)"
        )


def refuse_old_celery() -> None:
    """:func:`check_own_celery` for the command line: its one line on stderr, exit 2."""
    try:
        check_own_celery()
    except InterpreterError as error:
        print(f"celery-chaos: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def check_own_celery() -> None:
    """Refuse this environment's Celery when older than the harness works with: installed
    beside an app, celery-chaos asks for no Celery version, so pip never upgrades the app's;
    an older one is refused here, at start, in one line."""
    from celery_chaos.run.versions import library_versions

    check_celery(library_versions(), f"celery-chaos's own environment ({sys.executable})")


def _package_dir() -> Path:
    import celery_chaos

    return Path(celery_chaos.__file__).parent


def stage_agent(destination: Path) -> Path:
    """Copy the agent's modules (and the sample app) into ``destination/celery_chaos``; return
    the folder for the workers' ``PYTHONPATH``. Works for an editable and a wheel install."""
    source, target = _package_dir(), destination / "celery_chaos"
    shutil.rmtree(target, ignore_errors=True)
    for name in AGENT_MODULES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)
    for name in EMPTY_PACKAGES:
        (target / name / "__init__.py").write_text('"""Staged for the agent."""\n')
    sample = source / "sample_tasks"
    if not sample.is_dir():  # an editable install keeps the sample app in the repo's folder
        from importlib import util

        found = util.find_spec("celery_chaos.sample_tasks")
        assert found is not None and found.submodule_search_locations
        sample = Path(next(iter(found.submodule_search_locations)))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(sample, target / "sample_tasks", ignore=ignore)
    return destination
