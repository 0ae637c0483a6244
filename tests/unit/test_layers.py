"""The layering is enforced, not hoped for: the import contracts in pyproject.toml hold.

Each contract runs on its own (`lint-imports --contract ID`) so a failure names the one rule that
broke and lint-imports prints the offending import chain.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "harness" / "celery_chaos"
# The ids of the [[tool.importlinter.contracts]] in pyproject.toml (an unknown id fails).
CONTRACTS = (
    "layers",
    "pure-core",
    "pytest-only-in-plugin",
    "placements-and-brokers-never-import-the-checker",
    "placements-are-independent",
    "no-cycles",
)
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is in the dev extra")
@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_contract_is_kept(contract: str) -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--contract", contract],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[done.stdout.find("Contracts") :] + done.stderr


def test_the_public_surface_is_the_agent_api() -> None:
    import celery_chaos

    assert set(celery_chaos.__all__) == {
        "LockHeld",
        "__version__",
        "apply_once",
        "checkpoint",
        "install",
        "lock",
        "side_effect",
        "store",
    }
    assert all(getattr(celery_chaos, name) is not None for name in celery_chaos.__all__)


def test_importing_the_package_imports_neither_celery_nor_redis() -> None:
    # The pytest plugin and the CLI import celery_chaos; the agent API loads on first use.
    code = "import sys, celery_chaos;print(sorted({'celery', 'redis', 'kombu'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
