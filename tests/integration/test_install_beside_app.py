"""Issue 18's app-stack matrix: celery-chaos beside a real app from PyPI, and beside none.

Per stack (tests/integration/app_stacks_support.py: (a) Celery 5.2.7 + pydantic 1 + FastAPI
0.95, (b) Celery 5.4 + Django 4.2, (c) the latest releases), one venv for the whole file: frozen
before and after installing this project's wheel with plain resolution (packages may be added,
none that was there may change version; ``pip check`` clean); then, with real workers on the
local backend, the venv's ``celery-chaos run`` of a built-in kill scenario and a ``chaos_env``
test under the venv's pytest, both on the stack's Celery (the versions block says so); and the
same scenario from a separate harness venv (the wheel, latest deps) with ``--python``. Pythons
this machine lacks (3.10, 3.12, 3.13) are checked at the resolution level with ``uv pip
compile --python-version``. Everything comes from uv's cache first: skipped when offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.app_stacks_support import (
    APP_PYTEST,
    CHAOS_CASE,
    SCENARIO,
    STACKS,
    TOO_OLD,
    AppStack,
    Venv,
    app_stack,
    changed,
    freeze,
    install,
    make_venv,
    output,
    resolve_pair,
    result_of,
    with_pytest,
)
from tests.integration.uv_support import build_wheel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once for the file."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module", params=list(STACKS))
def stack(
    request: pytest.FixtureRequest, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> AppStack:
    """One venv per stack, shared by that stack's tests."""
    return app_stack(request.param, wheel, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def harness(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The harness in an environment of its own: just the wheel, with its latest deps."""
    venv = make_venv(tmp_path_factory.mktemp("harness") / "venv")
    install(venv, str(wheel))
    return Venv(venv, freeze(venv))


def test_installing_the_wheel_changes_no_version_the_app_has(stack: AppStack) -> None:
    assert changed(stack.before, stack.frozen) == {}, f"{stack.name}: installing changed"
    assert stack.check is not None and stack.check.returncode == 0, output(stack.check)
    modules = ["celery", *(m for m in ("fastapi", "django", "pydantic") if m in stack.before)]
    imported = stack.run("python", "-c", f"import {', '.join(modules)}", cwd=stack.path)
    assert imported.returncode == 0, output(imported)  # the app no longer imported


def _assert_apps_versions(versions: dict, stack: AppStack, harness: dict[str, str]) -> None:
    """The workers ran the stack's Celery and Kombu; the harness's own are named beside them."""
    app = (stack.before["celery"], stack.before["kombu"])
    assert (versions["celery"], versions["kombu"]) == app, versions
    assert (versions["harness_celery"], versions["harness_kombu"]) == (
        harness["celery"],
        harness["kombu"],
    ), versions
    differ = (harness["celery"], harness["kombu"]) != app
    assert ("client_mismatch" in versions) == differ, versions


def test_a_built_in_scenario_runs_on_the_apps_celery(stack: AppStack, tmp_path: Path) -> None:
    """The venv's own ``celery-chaos run``: a pool process SIGKILLed, the early-acked task lost."""
    reports = tmp_path / "reports"
    done = stack.run(
        "celery-chaos", "run", "--only", SCENARIO, "--report-dir", str(reports), "-j", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, output(done)
    result = result_of(reports, f"latest/{SCENARIO}/result.json")
    assert result["status"] == "passed", output(done)
    _assert_apps_versions(result["versions"], stack, stack.frozen)
    assert result["versions"]["worker_python"] == result["versions"]["harness_python"]


def test_a_chaos_env_test_runs_on_the_apps_celery(stack: AppStack, tmp_path: Path) -> None:
    """The app's pytest runs a ``chaos_env`` test (kill_child under acks_late + reject: rerun
    once); its result.json shows the stack's Celery in the workers."""
    shutil.copy(CHAOS_CASE, tmp_path / "chaos_case.py")
    done = stack.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "chaos_case.py", "-q",
        "--chaos-report-dir", "reports", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0 and "1 passed" in done.stdout, output(done)
    result = result_of(tmp_path / "reports", "*/envs/*/*/result.json")
    assert result["verdicts"]["recovered"] == 1, result["verdicts"]
    _assert_apps_versions(result["versions"], stack, stack.frozen)


def test_the_same_scenario_from_a_harness_venv_with_python(
    stack: AppStack, harness: Venv, tmp_path: Path
) -> None:
    """Way 2: the harness's own venv, the workers on the app's interpreter (``--python``)."""
    reports = tmp_path / "reports"
    done = harness.run(
        "celery-chaos", "run", "--python", stack.python, "--only", SCENARIO,
        "--report-dir", str(reports), "-j", "1", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, output(done)
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"celery-chaos: workers run on {stack.python} (--python): "), first
    assert f"celery {stack.before['celery']}" in first
    result = result_of(reports, f"latest/{SCENARIO}/result.json")
    assert result["status"] == "passed", output(done)
    _assert_apps_versions(result["versions"], stack, harness.frozen)


@pytest.mark.parametrize("python_version", ["3.10", "3.12", "3.13"])
@pytest.mark.parametrize("name", list(STACKS))
def test_on_pythons_not_here_the_wheel_changes_no_resolved_version(
    name: str, python_version: str, wheel: Path, tmp_path: Path
) -> None:
    """Resolved for ``python_version``: the stack alone and with the plain wheel, and the stack
    with the app's pytest alone and with the wheel's pytest extra; each second resolution pins
    every package of the first at the same version."""
    pairs = {
        "plain": (STACKS[name], str(wheel)),
        "pytest extra": ((*STACKS[name], APP_PYTEST), with_pytest(wheel)),
    }
    for label, (app, requirement) in pairs.items():
        work = tmp_path / label.replace(" ", "-")
        work.mkdir()
        alone, beside = resolve_pair(app, requirement, python_version, work)
        assert "celery" in alone and changed(alone, beside) == {}, f"{name} {label}"


def test_beside_an_older_celery_nothing_changes_and_every_way_in_refuses(
    wheel: Path, tmp_path: Path
) -> None:
    """Celery 4.4.7: the wheel (with its pytest extra) installs beside it without a version
    change, then ``run``, ``audit`` and a ``chaos_env`` test each refuse in one line naming
    both versions, exit 2, nothing started."""
    venv = make_venv(tmp_path / "app")
    install(venv, *TOO_OLD)
    before = freeze(venv)
    install(venv, with_pytest(wheel))
    app = Venv(venv, freeze(venv))
    assert before["celery"] == "4.4.7" and changed(before, app.frozen) == {}
    shutil.copy(CHAOS_CASE, tmp_path / "chaos_case.py")
    commands = {
        "run": ("celery-chaos", "run", "--only", SCENARIO, "--report-dir", str(tmp_path / "r")),
        "audit": ("celery-chaos", "audit", "--app", "celery_chaos.sample_tasks.app:app"),
        # Celery 4.4's own pytest plugin cannot import on Python 3.11 (vine uses
        # inspect.formatargspec): off, so that ours is what meets the old Celery.
        "chaos_env": ("python", "-m", "pytest", "-p", "no:celery", "chaos_case.py", "-q"),
    }
    for name, argv in commands.items():
        done = app.run(*argv, cwd=tmp_path)
        assert done.returncode == 2, f"{name}: {output(done)}"
        said = [line for line in (done.stdout + done.stderr).splitlines() if "4.4.7" in line]
        assert len(said) == 1 and "needs Celery 5.2 or later" in said[0], f"{name}: {said}"
    assert not (tmp_path / "r").exists()
