"""``--python``'s pure parts: which interpreter is the default, the version refusal, the
client/worker mismatch line, and that the staged agent is closed under its own imports and
imports nothing an app's environment may lack."""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

import pytest
from celery_chaos.run import interpreter
from celery_chaos.run.interpreter import (
    AGENT_MODULES,
    HARNESS,
    InterpreterError,
    check_celery,
    default_python,
    stage_agent,
)
from celery_chaos.run.versions import mismatch

PACKAGE = Path(interpreter.__file__).resolve().parents[1]
# What an app's environment may lack: the agent never imports them (redis-py only where the app
# has it, inside store(), guarded by ImportError).
FORBIDDEN = {"redis", "pydantic", "yaml", "click", "rich", "jinja2"}


def _python(folder: Path) -> Path:
    path = folder / "bin" / "python"
    path.parent.mkdir(parents=True)
    path.write_text("")
    return path


def test_the_default_is_the_active_virtualenv_then_dot_venv_then_the_harness(
    tmp_path: Path,
) -> None:
    active, local = _python(tmp_path / "active"), _python(tmp_path / "app" / ".venv")
    app = tmp_path / "app"
    environ = {"VIRTUAL_ENV": str(tmp_path / "active")}
    assert default_python(app, environ) == (str(active), "$VIRTUAL_ENV")
    assert default_python(app, {}) == (str(local), "./.venv")
    assert default_python(tmp_path, {}) == (sys.executable, HARNESS)


def test_an_older_celery_is_refused_naming_both_versions() -> None:
    with pytest.raises(InterpreterError) as refused:
        check_celery({"python": "3.11.7", "celery": "5.1.2"}, "--python /envs/old/bin/python")
    message = str(refused.value)
    assert message.startswith("--python /envs/old/bin/python: Celery 5.1.2 there")
    assert "needs Celery 5.2 or later" in message and "\n" not in message
    check_celery({"python": "3.9.18", "celery": "5.2.7"}, "--python x")  # the oldest measured


def test_a_python_too_old_for_the_agent_is_refused_naming_both_versions() -> None:
    with pytest.raises(InterpreterError, match=r"^--python x: Python 3\.8\.18 there; .* 3\.9 "):
        check_celery({"python": "3.8.18", "celery": "5.2.7"}, "--python x")


def test_a_missing_interpreter_is_one_line_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(InterpreterError, match=r"^--python .*missing: no such file$"):
        interpreter.resolve(str(tmp_path / "missing"), tmp_path)


def test_the_harness_own_interpreter_is_not_foreign(tmp_path: Path) -> None:
    chosen = interpreter.resolve(sys.executable, tmp_path)
    assert not chosen.foreign and chosen.versions["celery"]


def test_a_client_worker_mismatch_is_one_line_and_agreement_none() -> None:
    client = {"celery": "5.7.0", "kombu": "5.7.0"}
    line = mismatch(client, {"celery": "5.2.7", "kombu": "5.2.4"})
    assert line == (
        "the client dispatching tasks runs celery 5.7.0, the workers 5.2.7;"
        " kombu 5.7.0, the workers 5.2.4"
    )
    assert mismatch(client, dict(client)) is None


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every module ``path`` imports, and whether under a ``try`` (an optional import)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = guarded or isinstance(child, ast.Try)
            if isinstance(child, ast.Import):
                found.extend((alias.name, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.append((child.module, inside))
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def test_the_staged_agent_is_closed_under_its_imports_and_needs_nothing_an_app_lacks() -> None:
    staged = {name.removesuffix(".py").replace("/", ".") for name in AGENT_MODULES}
    staged = {("celery_chaos." + name).removesuffix(".__init__") for name in staged}
    staged.add("celery_chaos")
    for name in AGENT_MODULES:
        for module, optional in _imports(PACKAGE / name):
            top = module.split(".")[0]
            if top == "celery_chaos":
                assert module in staged or module.startswith("celery_chaos.sample_tasks"), (
                    f"{name} imports {module}, which is not staged"
                )
            elif top in FORBIDDEN:
                assert optional and top == "redis", f"{name} imports {module}"


def test_stage_agent_copies_only_the_listed_modules_and_the_sample_app(tmp_path: Path) -> None:
    folder = stage_agent(tmp_path)
    copied = {
        str(p.relative_to(folder / "celery_chaos"))
        for p in (folder / "celery_chaos").rglob("*.py")
        if "sample_tasks" not in p.parts
    }
    assert copied == set(AGENT_MODULES) | {"tools/__init__.py", "tools/audit/__init__.py"}
    assert (folder / "celery_chaos" / "sample_tasks" / "tasks.py").is_file()
    assert not (folder / "celery_chaos" / "ledger.py").exists()  # the harness's redis-py side


def test_a_relative_or_bare_python_becomes_a_path_the_workers_can_use(tmp_path: Path) -> None:
    """Workers start in their run folder: a relative ``.venv/bin/python`` must not break."""
    _python(tmp_path / ".venv")
    assert interpreter.absolute(".venv/bin/python", tmp_path) == str(tmp_path / ".venv/bin/python")
    assert interpreter.absolute("sh", tmp_path) == shutil.which("sh")
    assert interpreter.absolute("/usr/bin/env", tmp_path) == "/usr/bin/env"
