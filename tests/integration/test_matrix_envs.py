"""Matrix environments offline: built from a wheelhouse with no index at all, and reused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from celery_chaos.tools.matrix import envs
from celery_chaos.tools.matrix.version_sets import from_options

pytestmark = pytest.mark.integration


def test_an_env_builds_offline_from_a_wheelhouse_and_is_then_cached(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    (column,) = from_options({"celery": "5.4", "kombu": "5.4"})
    downloaded = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
         "-d", str(wheelhouse), *column.requirements()],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if downloaded.returncode != 0:
        pytest.skip(f"no package index to fill the wheelhouse from: {downloaded.stderr[-200:]}")
    sources = envs.Sources(find_links=(str(wheelhouse),), offline=True)
    built = envs.build_env(column, sources, tmp_path / "envs")
    assert not built.cached
    probe = subprocess.run(
        [built.python, "-c", "import celery, kombu; print(celery.__version__, kombu.__version__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    celery_version, kombu_version = probe.stdout.split()
    assert celery_version.startswith("5.4.") and kombu_version.startswith("5.4.")
    again = envs.build_env(column, sources, tmp_path / "envs")
    assert again.cached and again.path == built.path


def test_an_unsatisfiable_version_is_one_clear_error(tmp_path: Path) -> None:
    (column,) = from_options({"celery": "5.4"})
    empty = tmp_path / "empty-wheelhouse"
    empty.mkdir()
    sources = envs.Sources(find_links=(str(empty),), offline=True)
    with pytest.raises(envs.EnvBuildError, match=r"^celery-5\.4: uv pip install: .*celery"):
        envs.build_env(column, sources, tmp_path / "envs")
    assert list((tmp_path / "envs").iterdir()) == []  # no half-built environment left
