"""A user who installed the wheel, with no clone, runs the built-in suite from an empty folder.

The wheel is built from a copy of the sources, installed into a fresh virtualenv outside the repo
(``uv venv`` + ``uv pip install``, from uv's cache when it has everything), and every command runs
with that virtualenv's ``bin`` first on PATH, from an empty folder, with nothing of the repo on
``sys.path``: exactly what a user of ``pip install celery-chaos`` has.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")
FAST_SCENARIO = "ack-late-reject-child-kill"
# Folders that are not sources (or are the output of a previous build) stay out of the copy.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "reports", "*.egg-info", "__pycache__", ".*_cache"
)
# An app with Celery's defaults on Redis: audit prints a "shown by:" command for it.
USER_APP = """
from celery import Celery

app = Celery("userapp", broker="redis://localhost:6379/0")


@app.task
def ingest(doc_id):
    return doc_id
"""

# The names in the suite installed with the package (`list` wraps long names in its table).
SUITE_NAMES = """
from importlib.resources import files
import yaml
for f in files("celery_chaos.scenarios").iterdir():
    if f.name.endswith(".yaml"):
        print(yaml.safe_load(f.read_text())["name"])
"""


@dataclass
class Installed:
    wheel: Path
    venv: Path
    empty: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self) -> dict[str, str]:
        """The environment of a user's shell: the venv first on PATH, nothing of the repo."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAOS_", "PYTHON"))}
        env.pop("VIRTUAL_ENV", None)
        path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))]
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), *path])
        return env

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            cwd=self.empty,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _build_wheel(out: Path, sources: Path) -> Path:
    """Built the way a release is: in an isolated build environment with the build-system's
    own requirements (this machine's setuptools may be older than pyproject asks for)."""
    shutil.copytree(ROOT, sources, ignore=NOT_SOURCES)
    if UV:
        command = [UV, "build", "--wheel", "--python", sys.executable]
        subprocess.run([*command, "--out-dir", str(out), str(sources)], check=True, timeout=300)
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps"]
        subprocess.run([*command, "-w", str(out), str(sources)], check=True, timeout=300)
    (wheel,) = out.glob("celery_chaos-*.whl")
    return wheel


def _install(wheel: Path, venv: Path) -> None:
    """Into a fresh venv; offline from uv's cache first, the package index only if needed."""
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    install = [UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)]
    if subprocess.run([*install, "--offline"], capture_output=True).returncode != 0:
        subprocess.run(install, check=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    if UV is None:
        pytest.skip("uv makes the fresh virtualenv (pip install uv)")
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT)
    wheel = _build_wheel(base / "dist", base / "src")
    _install(wheel, base / "venv")
    empty = base / "empty"
    empty.mkdir()
    return Installed(wheel, base / "venv", empty)


def test_the_wheel_installs_only_celery_chaos(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("celery_chaos-")}
    assert top_level == {"celery_chaos"}
    assert "celery_chaos/scenarios/03-ack-late-reject-child-kill.yaml" in names
    assert "celery_chaos/sample_tasks/tasks.py" in names


@pytest.mark.parametrize("module", ["harness", "sample_tasks", "scenarios", "tools", "core"])
def test_no_generic_top_level_name_is_importable(installed: Installed, module: str) -> None:
    done = installed.run(str(installed.python), "-c", f"import {module}")
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


def test_the_public_api_imports(installed: Installed) -> None:
    code = (
        "from celery_chaos import apply_once, checkpoint, install, lock, side_effect, store;"
        "import celery_chaos.sample_tasks.tasks as t; print(t.__name__)"
    )
    done = installed.run(str(installed.python), "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "celery_chaos.sample_tasks.tasks"


def test_list_with_no_path_shows_the_built_in_suite(installed: Installed) -> None:
    done = installed.run("celery-chaos", "list")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("defaults-child-kill", FAST_SCENARIO, "poison-reject"):
        assert name in done.stdout


def test_run_with_no_path_runs_a_built_in_scenario(installed: Installed) -> None:
    reports = installed.empty.parent / "reports"
    done = installed.run(
        "celery-chaos", "run", "--only", FAST_SCENARIO, "--report-dir", str(reports)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((reports / "latest" / FAST_SCENARIO / "result.json").read_text())
    assert result["verdicts"]["recovered"] == 1 and result["verdicts"]["lost"] == 0
    assert result["status"] == "passed" and all(e["met"] for e in result["expectations"])


def test_every_command_audit_prints_works_as_printed(installed: Installed) -> None:
    (installed.empty / "userapp.py").write_text(USER_APP, encoding="utf-8")
    try:
        audit = installed.run("celery-chaos", "audit", "--app", "userapp:app")
    finally:
        (installed.empty / "userapp.py").unlink()
    assert audit.returncode == 1, audit.stdout + audit.stderr  # Celery's defaults lose tasks
    shown = {
        line.split("shown by: ", 1)[1].strip()
        for line in audit.stdout.splitlines()
        if "shown by: " in line
    }
    assert "celery-chaos run --only defaults-child-kill" in shown
    installed_names = installed.run(str(installed.python), "-c", SUITE_NAMES).stdout.split()
    for command in shown:  # each names a scenario of the suite `run` uses with no path
        assert shlex.split(command)[-1] in installed_names, command
    printed = shlex.split("celery-chaos run --only defaults-child-kill")
    done = installed.run(*printed, "--report-dir", str(installed.empty.parent / "audit-reports"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_green_pool_scenarios_are_skipped_without_their_extras(installed: Installed) -> None:
    """Issue 17: no extras installed, the built-in gevent/eventlet scenarios are skipped with the
    install hint and the run exits 0; ``--require-all`` (a job that must run everything) exits
    2."""
    probe = "import importlib.util as u; print(u.find_spec('gevent'), u.find_spec('eventlet'))"
    assert installed.run(str(installed.python), "-c", probe).stdout.split() == ["None", "None"]
    green = ["--only", "gevent-kill-is-whole-worker", "--only", "eventlet-kill-is-whole-worker"]
    reports = installed.empty.parent / "green-reports"
    done = installed.run("celery-chaos", "run", *green, "--report-dir", str(reports))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0/2 scenarios met their expectations, 2 skipped" in done.stdout
    for name, pool in (
        ("gevent-kill-is-whole-worker", "gevent"),
        ("eventlet-kill-is-whole-worker", "eventlet"),
    ):
        result = json.loads((reports / "latest" / name / "result.json").read_text())
        hint = f"workers.pool {pool}: not installed (pip install 'celery-chaos[{pool}]')"
        assert (result["status"], result["reason"]) == ("skipped", hint)
    required = installed.run(
        "celery-chaos", "run", *green, "--require-all", "--report-dir", str(reports)
    )
    assert required.returncode == 2, required.stdout + required.stderr
