"""``pip install celery-chaos`` without extras, then the built-in suite: a scenario whose pool
(gevent, eventlet) is not installed is ``skipped`` with the install hint and the run still exits
0; ``--require-all`` makes it exit 2; pytest reports it skipped.

The interpreter is a real one that cannot import gevent or eventlet: a venv on this Python (its
site-packages shared, so Celery and the harness are there) whose startup ``.pth`` installs an
import hook refusing both, as a missing package does (``ModuleNotFoundError``). The harness and
every worker it starts run on that interpreter (``sys.executable``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.scenario_support import SCENARIOS

pytestmark = pytest.mark.integration

GEVENT = "24a-gevent-kill-is-whole-worker.yaml"
PREFORK = "03-ack-late-reject-child-kill.yaml"
HINT = "workers.pool gevent: not installed (pip install 'celery-chaos[gevent]')"
REFUSE = """\
import sys


class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("gevent", "eventlet"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Refuse())
"""


@pytest.fixture(scope="module")
def green_less_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python with everything this one has but gevent and eventlet."""
    venv = tmp_path_factory.mktemp("no-extras") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        timeout=120,
    )
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    Path(site, "_refuse_green.py").write_text(REFUSE, encoding="utf-8")
    Path(site, "_refuse_green.pth").write_text("import _refuse_green\n", encoding="utf-8")
    probe = "import celery, celery_chaos\ntry:\n import gevent\nexcept ImportError: print('no')"
    assert subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, timeout=60
    ).stdout.split() == ["no"]  # the harness is there, gevent is not
    return python


def run(python: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    command = [python, "-m", "celery_chaos.cli", "run", *args, "--report-dir", "r", "--jobs", "1"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=280)


def status(cwd: Path, name: str) -> tuple[str, str]:
    document = json.loads((cwd / "r" / "latest" / name / "result.json").read_text())
    return document["status"], document["reason"]


def test_a_missing_extra_is_skipped_and_the_run_still_passes(
    green_less_python: str, tmp_path: Path
) -> None:
    done = run(green_less_python, tmp_path, str(SCENARIOS / GEVENT), str(SCENARIOS / PREFORK))

    assert done.returncode == 0, done.stdout + done.stderr
    assert status(tmp_path, "gevent-kill-is-whole-worker") == ("skipped", HINT)
    assert status(tmp_path, "ack-late-reject-child-kill")[0] == "passed"
    assert "1/2 scenarios met their expectations, 1 skipped" in done.stdout
    assert f"skipped gevent-kill-is-whole-worker: {HINT}" in done.stdout
    junit = (tmp_path / "r" / "latest" / "junit.xml").read_text()
    assert 'skipped="1"' in junit and 'failures="0"' in junit and 'errors="0"' in junit


def test_require_all_makes_a_missing_extra_fail_the_run(
    green_less_python: str, tmp_path: Path
) -> None:
    done = run(green_less_python, tmp_path, str(SCENARIOS / GEVENT), "--require-all")

    assert done.returncode == 2, done.stdout + done.stderr
    assert status(tmp_path, "gevent-kill-is-whole-worker") == ("not_runnable", HINT)


def test_pytest_reports_a_missing_extra_as_a_skip_with_the_hint(
    green_less_python: str, tmp_path: Path
) -> None:
    (tmp_path / "scenarios").mkdir()
    shutil.copy(SCENARIOS / GEVENT, tmp_path / "scenarios" / GEVENT)
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    command = [green_less_python, "-m", "pytest", "-p", "no:cacheprovider", "scenarios/", "-rs"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=280)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert HINT in done.stdout
