"""Matrix version sets with extra packages (``extras`` in a matrix file, ``--extra`` for every
set): what is installed, that they key the cached environment, and bad input as one line naming
the file or option and the field (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from celery_chaos.tools.matrix import envs
from celery_chaos.tools.matrix.version_sets import (
    VersionSetError,
    from_file,
    from_options,
    with_extras,
)


def matrix_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    return path


def test_a_version_set_installs_its_extras_beside_its_pins(tmp_path: Path) -> None:
    path = matrix_file(
        tmp_path,
        "version_sets:\n"
        "  - {celery: '5.2', name: old, extras: ['setuptools<70']}\n"
        "  - {celery: '5.5', extras: [gevent]}\n"
        "  - {celery: '5.7'}\n",
    )
    old, green, plain = from_file(path)
    assert old.requirements() == ["celery[redis]==5.2.*", "setuptools<70"]
    assert green.requirements() == ["celery[redis]==5.5.*", "gevent"]
    assert plain.extras == () and green.label == "celery-5.5"  # labels stay the pins'


def test_extras_key_their_own_cached_environment() -> None:
    (plain,) = from_options({"celery": "5.2"})
    (fixed,) = with_extras([plain], ["setuptools<70"], "--extra")
    assert envs.env_key(plain, envs.Sources()) != envs.env_key(fixed, envs.Sources())


def test_extra_option_adds_to_every_set_after_its_own() -> None:
    columns = from_options({"celery": "5.2,5.3"})
    both = with_extras(columns, ["setuptools<70", "eventlet>=0.33"], "--extra")
    assert [c.extras for c in both] == [("setuptools<70", "eventlet>=0.33")] * 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{celery: '5.2', extras: 'setuptools<70'}]", r"version_sets\[0\]\.extras: a list"),
        ("[{celery: '5.2', extras: [3]}]", r"version_sets\[0\]\.extras: a list"),
        ("[{celery: '5.2', extras: ['setuptools <<70']}]", r"version_sets\[0\]\.extras\[0\]"),
        ("[{celery: '5.2', extra: [gevent]}]", r"unknown key 'extra'; expected .*, extras"),
    ],
)
def test_bad_extras_in_a_file_name_the_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = matrix_file(tmp_path, f"version_sets: {text}\n")
    with pytest.raises(VersionSetError, match=message) as caught:
        from_file(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_a_bad_extra_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "celery_chaos.cli", "matrix", "--celery", "5.2",
         "--extra", "setuptools <<70", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    assert done.returncode == 2
    assert lines == [
        "celery-chaos: error: --extra[0]: 'setuptools <<70' is not a requirement"
        " (e.g. 'setuptools<70', gevent)"
    ]
