"""What every ``celery-chaos`` command shares: the console, one-line usage errors (exit 2),
masked output, the ``--report-dir`` option and its check, Ctrl-C/SIGTERM as an interrupt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console

from celery_chaos.core.conclusion import EXIT_INTERRUPTED, EXIT_UNUSABLE
from celery_chaos.core.scenario import load_suite
from celery_chaos.core.scenario_base import ScenarioError

__all__ = ["EXIT_INTERRUPTED", "EXIT_UNUSABLE"]
from celery_chaos.report.mask import mask, mask_text

SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


class UsageProblem(click.ClickException):
    """A one-line error with exit code 2."""

    exit_code = EXIT_UNUSABLE

    def show(self, file: object = None) -> None:
        click.echo(f"celery-chaos: error: {self.message}", err=True)


def _interrupt_handler(stop: threading.Event | None) -> Callable[[int, FrameType | None], None]:
    """SIGTERM and SIGINT as Ctrl-C. The flag is set as well as the exception raised: in CI a
    run killed early in its start-up went on to its end and exited 0, the exception lost (likely
    dropped by Python, as one raised in a ``__del__`` or a GC callback is); the run loop stops on
    the flag at its next pass instead."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if stop is not None:
            stop.set()
        raise KeyboardInterrupt(f"signal {signum}")

    return interrupt


def print_line(line: str) -> None:
    """One masked line, never wrapped (a CI log keeps it whole; a terminal wraps it itself)."""
    console.print(mask_text(line), markup=False, highlight=False, soft_wrap=True)


def check_report_dir(report_dir: Path) -> None:
    """Exit 2 naming --report-dir before anything starts when run folders cannot go there."""
    import tempfile

    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=report_dir):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageProblem(f"--report-dir {report_dir}: not a writable folder ({reason})") from None


def report_dir_option(what: str) -> Any:
    """``--report-dir``, checked writable by :func:`check_report_dir` before a run."""
    return click.option(
        "--report-dir",
        type=click.Path(path_type=Path),
        default=Path("reports"),
        show_default=True,
        help=f"Where {what} written.",
    )


def print_styled(text: str, style: str | None = None) -> None:
    """One unwrapped line: verdicts and probe values stay whole in CI logs."""
    from rich.text import Text

    console.print(Text(mask(text), style=style or ""), soft_wrap=True)


def strictness_options(command: Any) -> Any:
    """``--strict`` (an unclaimed anomaly verdict fails the scenario) and ``--require-all`` (a
    scenario whose optional extra is missing fails the run instead of being skipped)."""
    command = click.option(
        "--require-all",
        is_flag=True,
        help="A scenario that needs a missing extra (gevent, eventlet) is not_runnable (exit 2),"
        " not skipped: for a job that must run everything.",
    )(command)
    return click.option(
        "--strict",
        is_flag=True,
        help="Fail a scenario whose non-zero anomaly verdict (lost, pending, failed, stuck_locks,"
        " worker_crashes, ...) its expect does not name, as if each said strict: true.",
    )(command)


def backend_option(help_text: str) -> Any:
    """``--backend local|docker``."""
    from celery_chaos.placements import PLACEMENTS

    return click.option(
        "--backend",
        type=click.Choice(PLACEMENTS),
        default="local",
        show_default=True,
        help=help_text,
    )


def interruptible(work: Callable[[], Any], stop: threading.Event | None = None) -> Any:
    """Run ``work`` with SIGTERM and Ctrl-C handled alike (``stop``, the run's flag, set too);
    interrupted: a one-line note and exit 130 (the backends have stopped everything they started
    on the way out), also when ``work`` ended although the flag was set. A SIGINT the shell
    ignores (a background job's) stays ignored."""
    handler = _interrupt_handler(stop)
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    try:
        done = work()
        if stop is None or not stop.is_set():
            return done
    except KeyboardInterrupt:
        pass
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
    click.echo("celery-chaos: interrupted; everything started was stopped", err=True)
    sys.exit(EXIT_INTERRUPTED)


def builtin_suite() -> Path:
    """The default suite shipped in the package (``celery_chaos.scenarios``)."""
    from importlib.resources import files

    return Path(str(files("celery_chaos.scenarios")))


def load_scenarios(
    paths: tuple[Path, ...], only: tuple[str, ...] = (), import_app: bool = True
) -> list:
    """Scenarios under ``paths``; no path: the built-in suite (as pytest uses its testpaths).
    Each selected scenario passes the preflight (its app imported once, unless an image has it)."""
    from celery_chaos.run.preflight import checker

    if not paths and only:  # a built-in scenario by name, opt-in folders (rabbitmq/) included
        suite = builtin_suite()
        paths = (suite, *sorted(p for p in suite.iterdir() if p.is_dir() and p.name[0] != "_"))
    paths = paths or (builtin_suite(),)
    try:
        scenarios = load_suite(list(paths), list(only) or None, checker(import_app=import_app))
    except ScenarioError as error:
        raise UsageProblem(str(error)) from None
    if not scenarios:
        raise UsageProblem(f"{', '.join(map(str, paths))}: no scenario files (*.yaml) found")
    return scenarios


def python_option(command: Any) -> Any:
    """``--python PATH``: the app's interpreter (run.interpreter)."""
    return click.option(
        "--python",
        "python",
        default=None,
        metavar="PATH",
        help="Your app's Python: workers, the agent and your app's import run there with its"
        " packages, nothing installed into it (default: $VIRTUAL_ENV's, else ./.venv's, else"
        " celery-chaos's own; local backend only).",
    )(command)


def workers_python(option: str | None, backend: str = "local", quiet: bool = False) -> Any:
    """The interpreter the workers run on (``run.interpreter.Interpreter``), checked before
    anything starts (bad: one line naming --python, exit 2); said first when not our own
    (unless ``quiet``: ``audit --json`` prints the document only). ``--settings`` is checked
    there too: it must import where the app imports."""
    from celery_chaos.run.interpreter import HARNESS, Interpreter, InterpreterError, resolve

    if backend != "local":
        if option:
            raise UsageProblem(f"--python: only with --backend local (--backend {backend} runs"
                               " the worker image's Python)")  # fmt: skip
        if _given_settings():  # the containers get no variable of this process
            raise UsageProblem(
                f"--settings: only with --backend local (--backend {backend}: set"
                " DJANGO_SETTINGS_MODULE in the image, workers.env or repro's --env)"
            )
        return Interpreter(sys.executable, HARNESS)
    try:
        chosen = resolve(option, Path.cwd())
    except InterpreterError as error:
        raise UsageProblem(str(error)) from None
    if chosen.foreign and not quiet:
        print_line(f"celery-chaos: {chosen.describe()}")
    check_settings(chosen)
    return chosen


def settings_option(command: Any) -> Any:
    """``--settings MODULE``: the Django settings module, set as ``DJANGO_SETTINGS_MODULE`` in
    this process as soon as it is parsed, so the harness's own import of the app, the workers,
    the agent and every import on ``--python`` see it, as they see the variable when it is
    already in the environment (workers inherit it); checked by :func:`check_settings`."""
    return click.option(
        "--settings",
        default=None,
        metavar="MODULE",
        expose_value=False,
        callback=_set_settings,
        help="Your Django settings module (sets DJANGO_SETTINGS_MODULE for the workers and your"
        " app's import; default: the variable when set), e.g. myproject.settings.",
    )(command)


def _set_settings(ctx: click.Context, param: Any, value: str | None) -> None:
    """Set at parse time, before any import of the app; kept so :func:`check_settings` knows
    the module came from the flag (a variable already set is the user's own business)."""
    if value is not None:
        if not value.strip():
            raise UsageProblem("--settings: an empty module name")
        os.environ[SETTINGS_ENV] = value
        ctx.meta[SETTINGS_ENV] = value


def _given_settings() -> str | None:
    """The module ``--settings`` named in this command (None: not given)."""
    context = click.get_current_context(silent=True)
    return context.meta.get(SETTINGS_ENV) if context else None


def check_settings(chosen: Any) -> None:
    """A ``--settings`` module that does not import on ``chosen`` (where the app imports, from
    the current folder): one line naming it, exit 2, before anything starts."""
    module = _given_settings()
    if not module:
        return
    if chosen.foreign:
        problem = _settings_problem_on(chosen.path, module)
        if problem:
            raise UsageProblem(f"--settings {module}: cannot import on {chosen.path}: {problem}")
        return
    import importlib

    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        importlib.import_module(module)
    except Exception as error:  # a settings module may raise anything while importing
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
        raise UsageProblem(f"--settings {module}: cannot import: {reason}") from None


def _settings_problem_on(python: str, module: str) -> str | None:
    """Why ``module`` does not import on interpreter ``python`` from the current folder (its
    last error line), or None when it does."""
    code = "import importlib, sys; importlib.import_module(sys.argv[1])"
    path = os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [python, "-c", code, module],
            capture_output=True,
            text=True,
            env=os.environ | {"PYTHONPATH": path},
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "its import did not end in 120 s"
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or ["no output"])[-1]


@contextmanager
def staged_agent(chosen: Any) -> Iterator[dict[str, str]]:
    """The local backend's options for workers on ``chosen``: its path and a folder holding
    the agent for their PYTHONPATH (removed afterwards); none for the harness's own."""
    if not chosen.foreign:
        yield {}
        return
    import shutil
    import tempfile

    from celery_chaos.run.interpreter import stage_agent

    folder = Path(tempfile.mkdtemp(prefix="celery-chaos-agent-"))
    try:
        yield {"python": chosen.path, "agent_path": str(stage_agent(folder))}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_python_fits(chosen: Any, scenarios: list) -> list:
    """``scenarios``, checked for a foreign interpreter before anything starts (one line, not a
    worker dying at start): a Redis broker needs redis-py in the workers' environment (Kombu's
    transport imports it; the agent does not), and each app imports there (check_apps_on)."""
    if not chosen.foreign:
        return scenarios
    for scenario in scenarios:
        if scenario.broker.kind == "redis" and not chosen.versions.get("redis-py"):
            raise UsageProblem(
                f"--python {chosen.path}: no redis-py there, which scenario {scenario.name}'s"
                " Redis broker needs (an app on RabbitMQ: --broker rabbitmq)"
            )
    check_apps_on(chosen, scenarios)
    return scenarios


def check_apps_on(chosen: Any, scenarios: list) -> None:
    """What the preflight checks in this process when the workers share it: each scenario's app
    imports and registers its workload's tasks, here on the app's own interpreter (one import
    per app and environment)."""
    if not chosen.foreign:
        return
    from celery_chaos.agent.apps import AppImportError
    from celery_chaos.core.workflows import task_paths
    from celery_chaos.run.preflight import app_spec
    from celery_chaos.tools.audit.remote import collect_on

    seen: dict[tuple, Any] = {}
    for scenario in (s for s in scenarios if s.workers.image is None):  # else the image's app
        spec, env = app_spec(scenario), dict(scenario.workers.env)
        where = f"--python {chosen.path}: scenario {scenario.name}"
        key = (spec, tuple(sorted(env.items())))
        try:
            if key not in seen:
                seen[key] = collect_on(chosen.path, spec, Path.cwd(), env).tasks
        except AppImportError as error:
            raise UsageProblem(f"{where}: workers.app: {error}") from None
        for i, item in enumerate(scenario.workload):
            for path, name in task_paths(item):
                if name not in seen[key]:
                    raise UsageProblem(
                        f"{where}: workload[{i}].{path}: {name!r} is not registered in {spec}"
                    )
