"""Matrix extras in a real environment: a version set's ``extras`` are installed beside its
Celery stack (offline, from a wheelhouse), and only in that set's environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from celery_chaos.tools.matrix import envs
from celery_chaos.tools.matrix.version_sets import from_options, with_extras

pytestmark = pytest.mark.integration
PROBE = "import celery, pkg_resources; print(celery.__version__)"


def test_extras_are_installed_in_their_own_environment(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    (plain,) = from_options({"celery": "5.2"})
    (fixed,) = with_extras([plain], ["setuptools<70"], "--extra")
    downloaded = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
         "-d", str(wheelhouse), *fixed.requirements()],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if downloaded.returncode != 0:
        pytest.skip(f"no package index to fill the wheelhouse from: {downloaded.stderr[-200:]}")
    sources = envs.Sources(find_links=(str(wheelhouse),), offline=True)
    without = envs.build_env(plain, sources, tmp_path / "envs")
    with_setuptools = envs.build_env(fixed, sources, tmp_path / "envs")
    assert without.path != with_setuptools.path  # extras key their own cached environment
    bare = subprocess.run([without.python, "-c", PROBE], capture_output=True, text=True)
    assert bare.returncode != 0 and "No module named 'pkg_resources'" in bare.stderr
    probe = subprocess.run([with_setuptools.python, "-c", PROBE], capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.strip().startswith("5.2.")
