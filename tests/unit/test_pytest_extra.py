"""pytest is the ``pytest`` extra's, not a runtime dependency: the plugin and
``celery_chaos.testing`` refuse in one line naming the extra where pytest is missing, and the
rest of the harness (the command line) imports without it. A subprocess makes ``import pytest``
fail with a meta-path blocker, as an environment without pytest does (the pytest11 entry point
is only ever loaded by pytest itself, so there it always finds pytest)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKER = """
import sys

class NoPytest:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pytest", "_pytest"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoPytest())
"""
HINT = "which celery-chaos installs with its pytest extra: pip install 'celery-chaos[pytest]'"


def imported(module: str, block: bool = True) -> subprocess.CompletedProcess:
    code = (BLOCKER if block else "") + f"import {module}\nprint('imported')\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("module", ["celery_chaos.testing", "celery_chaos.pytest_plugin"])
def test_without_pytest_the_import_refuses_in_one_line_naming_the_extra(module: str) -> None:
    done = imported(module)
    assert done.returncode == 1 and "imported" not in done.stdout, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"ImportError: {module} needs pytest, {HINT}", done.stderr
    assert "During handling" not in done.stderr  # one error, not pytest's chained to it
    assert imported(module, block=False).stdout.strip() == "imported"  # with pytest: it imports


def test_the_command_line_needs_no_pytest() -> None:
    done = imported("celery_chaos.cli")
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr
