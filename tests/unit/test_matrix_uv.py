"""Where ``celery-chaos matrix`` finds uv: beside this Python, then the ``uv`` package, then PATH.

Each place holds a real executable script that prints its own name, so the test proves which one
``uv_executable()`` picked by running it, not by comparing strings only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery_chaos.tools.matrix import envs

pytestmark = pytest.mark.skipif(os.name == "nt", reason="shell-script executables")


def _executable(folder: Path, label: str, name: str = "uv") -> Path:
    """A real ``uv`` stand-in that prints ``label`` when run."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f"#!/bin/sh\necho {label}\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def _uv_package(root: Path, binary: Path | None) -> None:
    """A ``uv`` module whose ``find_uv_bin`` answers as the real one does (the path, or
    FileNotFoundError when its binary is missing)."""
    root.mkdir(parents=True, exist_ok=True)
    answer = f"return {str(binary)!r}" if binary else "raise FileNotFoundError('no uv binary')"
    (root / "uv.py").write_text(f"def find_uv_bin():\n    {answer}\n", encoding="utf-8")


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A fake interpreter folder as ``sys.executable``'s, an empty PATH and no ``uv`` module."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    path_dir = tmp_path / "on-path"
    path_dir.mkdir()
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.setitem(sys.modules, "uv", None)  # import uv -> ImportError unless a test adds it
    return {"bin": bin_dir, "path": path_dir, "package": tmp_path / "site", "tmp": tmp_path}


def _picked() -> str:
    """Run the uv ``uv_executable()`` chose; what it printed."""
    found = envs.uv_executable()
    return subprocess.run([found], capture_output=True, text=True, check=True).stdout.strip()


def _use_package(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch, binary: Path | None):
    _uv_package(places["package"], binary)
    monkeypatch.delitem(sys.modules, "uv")
    monkeypatch.syspath_prepend(str(places["package"]))


def test_the_uv_beside_this_python_comes_first(places, monkeypatch) -> None:
    _executable(places["bin"], "beside")
    _executable(places["path"], "on-path")
    _use_package(places, monkeypatch, _executable(places["tmp"] / "pkg-bin", "package"))
    assert _picked() == "beside"


def test_then_the_uv_package_lookup(places, monkeypatch) -> None:
    _executable(places["path"], "on-path")
    _use_package(places, monkeypatch, _executable(places["tmp"] / "pkg-bin", "package"))
    assert _picked() == "package"


def test_then_path_when_the_package_is_missing_or_has_no_binary(places, monkeypatch) -> None:
    _executable(places["path"], "on-path")
    assert _picked() == "on-path"  # no uv module at all
    _use_package(places, monkeypatch, None)
    assert _picked() == "on-path"  # uv module whose binary is gone


def test_a_non_executable_file_beside_python_is_not_uv(places) -> None:
    (places["bin"] / "uv").write_text("not a program", encoding="utf-8")
    _executable(places["path"], "on-path")
    assert _picked() == "on-path"


def test_no_uv_anywhere_is_one_error_naming_the_extra(places) -> None:
    with pytest.raises(envs.EnvBuildError, match=r"celery-chaos\[matrix\]") as error:
        envs.uv_executable()
    assert str(places["bin"] / "python") in str(error.value)
