"""The ``celery-chaos`` command line.

Exit codes of ``run``: 0 every scenario passed; 1 at least one failed (an expectation not met);
3 none failed but one was inconclusive (a fault skipped or failed); 2 bad input or an environment
that cannot run a scenario (the message names the file/field and why); 130 interrupted. When
scenarios end differently the first of 1, 3, 2 that applies wins.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console

from celery_chaos.backends import BACKENDS, BackendError
from celery_chaos.core.fault_kinds import FAULT_TABLE
from celery_chaos.core.outcome import EXIT_INTERRUPTED, EXIT_UNUSABLE
from celery_chaos.core.scenario import ScenarioError, load_suite
from celery_chaos.report.mask import mask, mask_text
from celery_chaos.tools.repro import FAULTS as REPRO_FAULTS

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


class UsageProblem(click.ClickException):
    """A one-line error with exit code 2."""

    exit_code = EXIT_UNUSABLE

    def show(self, file: object = None) -> None:
        click.echo(f"celery-chaos: error: {self.message}", err=True)


def _terminate_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def builtin_suite() -> Path:
    """The default suite shipped in the package (``celery_chaos.scenarios``)."""
    from importlib.resources import files

    return Path(str(files("celery_chaos.scenarios")))


def _load(paths: tuple[Path, ...], only: tuple[str, ...] = ()) -> list:
    """Scenarios under ``paths``; no path: the built-in suite (as pytest uses its testpaths)."""
    paths = paths or (builtin_suite(),)
    try:
        scenarios = load_suite(list(paths), list(only) or None)
    except ScenarioError as error:
        raise UsageProblem(str(error)) from None
    if not scenarios:
        raise UsageProblem(f"{', '.join(map(str, paths))}: no scenario files (*.yaml) found")
    return scenarios


def _plain(line: str) -> None:
    console.print(mask_text(line), markup=False, highlight=False)


def _writable_report_dir(report_dir: Path) -> None:
    """Exit 2 naming --report-dir before anything starts when run folders cannot go there."""
    import tempfile

    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=report_dir):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageProblem(f"--report-dir {report_dir}: not a writable folder ({reason})") from None


def _print_result(result: object) -> None:
    from celery_chaos.report.files import scenario_footer, scenario_table

    console.print(scenario_table(result))
    _plain(scenario_footer(result))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="celery-chaos")
def main() -> None:
    """Kill real Celery workers mid-task and prove what happened to every task."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where run folders are written.",
)
@click.option("--seed", type=int, default=None, help="Seed for random triggers (printed; replays).")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="local",
    show_default=True,
    help="local: processes on this machine; docker: containers via Testcontainers.",
)
@click.option("--only", multiple=True, metavar="NAME", help="Run only this scenario (repeatable).")
@click.option("--worker-image", default=None, help="docker backend: the worker image to use.")
@click.option("--redis-image", default=None, help="docker backend: the Redis image to use.")
@click.option("-v", "--verbose", is_flag=True, help="Print every history event live.")
def run(
    paths: tuple[Path, ...],
    report_dir: Path,
    seed: int | None,
    backend: str,
    only: tuple[str, ...],
    worker_image: str | None,
    redis_image: str | None,
    verbose: bool,
) -> None:
    """Run the scenarios in PATHS (files or folders; none: the built-in suite) and check every
    task's fate.

    Writes REPORT_DIR/<timestamp>/ with one folder per scenario (result.json, history.jsonl,
    logs/), junit.xml and summary.md; REPORT_DIR/latest points at it. Exit 0 all passed, 1 one
    failed, 3 one inconclusive (a fault did not land), 2 bad input or not runnable here, 130
    interrupted (1 before 3 before 2).
    """
    from celery_chaos.run.runner import RunOptions, run_suite
    from celery_chaos.run.versions import header, library_versions

    scenarios = _load(paths, only)
    backend_options = {
        key: value
        for key, value in (("worker_image", worker_image), ("redis_image", redis_image))
        if value
    }
    if backend_options and backend != "docker":
        raise UsageProblem("--worker-image/--redis-image: only with --backend docker")
    _writable_report_dir(report_dir)
    options = RunOptions(
        backend=backend,
        report_dir=report_dir,
        seed=seed,
        verbose=verbose,
        backend_options=backend_options,
    )
    _plain(f"celery-chaos: {header(library_versions())}")
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        suite = run_suite(scenarios, options, log=_plain, on_result=_print_result)
    except KeyboardInterrupt:
        click.echo("celery-chaos: interrupted; everything started was stopped", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BackendError as error:
        raise UsageProblem(str(error)) from None
    console.print(
        f"\n{suite.passed}/{len(suite.results)} scenarios met their expectations."
        f" Report: {suite.run_dir}"
    )
    sys.exit(suite.exit_code)


def _fault_table() -> Any:
    from rich.table import Table

    table = Table(title="fault kinds", title_justify="left")
    for column in ("kind", "what it does", "needs a running task", "backends"):
        table.add_column(column)
    for row in FAULT_TABLE.values():
        needs = "yes" if row.needs_task else ""
        table.add_row(row.kind, row.summary, needs, ", ".join(sorted(row.backends)))
    return table


@main.command(name="list")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def list_scenarios(paths: tuple[Path, ...]) -> None:
    """Show the scenarios in PATHS (none: the built-in suite), their faults and what each
    expects, then the fault kinds and which backends can inject each."""
    from rich.table import Table

    table = Table(show_lines=True)
    for column in ("scenario", "faults", "expects", "description"):
        table.add_column(column)
    for scenario in _load(paths):
        faults = ", ".join(f.kind for f in scenario.faults) or "-"
        expects = (
            ", ".join(
                f"{k}={v}" if isinstance(v, int) else f"{k} in [{v.min}, {v.max}]"
                for k, v in scenario.expect.items()
            )
            or "-"
        )
        table.add_row(scenario.name, faults, expects, scenario.description)
    console.print(table)
    console.print(_fault_table())


@main.command()
@click.option("--run-id", default=None, help="Only this run's objects (default: every run's).")
def cleanup(run_id: str | None) -> None:
    """Remove containers and networks a docker-backend run left behind (e.g. after kill -9).

    Finds them by the ``celery-chaos.run`` label; never touches anything else.
    """
    from celery_chaos.backends.docker import images as image_builder
    from celery_chaos.backends.docker.backend import cleanup as remove_labelled

    ok, reason = image_builder.engine_available()
    if not ok:
        raise UsageProblem(f"docker: {reason}")
    removed = remove_labelled(run_id)
    for line in removed:
        console.print(f"removed {line}")
    console.print(f"{len(removed)} objects removed")


@main.group()
def images() -> None:
    """Build the images the docker backend runs (worker, Redis)."""


@images.command(name="build")
@click.option(
    "--offline",
    is_flag=True,
    help="No registry: debootstrap a Debian base and install from a host wheelhouse.",
)
@click.option("--worker-image", default=None, help="Tag for the worker image.")
@click.option("--redis-image", default=None, help="Tag for the Redis image.")
def images_build(offline: bool, worker_image: str | None, redis_image: str | None) -> None:
    """Build the worker image (and, with --offline, the base and Redis images)."""
    from celery_chaos.backends.docker import images as image_builder

    ok, reason = image_builder.engine_available()
    if not ok:
        raise UsageProblem(f"docker: {reason}")
    names = {
        key: value
        for key, value in (("worker_image", worker_image), ("redis_image", redis_image))
        if value
    }
    try:
        built = image_builder.build_images(offline=offline, log=_plain, **names)
    except image_builder.ImageBuildError as error:
        raise UsageProblem(f"images build: {error}") from None
    for role, tag in built.items():
        console.print(f"{role}: {tag}")


# --- repro and audit: your own app ------------------------------------------------------------


def _json_option(text: str | None, option: str, kind: type) -> Any:
    """A JSON list/object option, or None when not given (a --file may supply it)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UsageProblem(f"{option} {text!r}: not valid JSON ({error})") from None
    if not isinstance(value, kind):
        raise UsageProblem(f"{option}: expected a JSON {'list' if kind is list else 'object'}")
    return value


def _line(text: str, style: str | None = None) -> None:
    """One unwrapped line: verdicts and probe values stay whole in CI logs."""
    from rich.text import Text

    console.print(Text(mask(text), style=style or ""), soft_wrap=True)


def _print_repro(outcome: Any) -> None:
    verdict = outcome.verdict
    style = {0: "bold green", 1: "bold red"}.get(outcome.exit_code, "bold yellow")
    console.print()
    _line(verdict.headline, style)
    if verdict.code == "NOT RUN":
        _line(f"Logs: {outcome.result.report_dir / 'logs'}")
        return
    for reason in verdict.reasons:
        _line(f"  because {reason}")
    _line(f"Settings in effect for {outcome.result.scenario.workload[0].task}:")
    for setting in outcome.settings:
        _line(f"  {setting}")
    if outcome.probes:
        _line("Probes:")
    for probe in outcome.probes:
        _line(f"  {probe.get('name')} ({probe.get('kind', '?')}): {probe.get('summary', '')}")
    _line(f"Report: {outcome.result.report_dir / 'result.json'}")


@main.command()
@click.option(
    "--app",
    "app_spec",
    default=None,
    metavar="MODULE:ATTR",
    help="Your Celery app, importable from the current directory (e.g. myproject.celery:app).",
)
@click.option("--task", default=None, help="The registered name of the task to dispatch.")
@click.option("--args", "args_json", default=None, metavar="JSON", help="A JSON list (default []).")
@click.option(
    "--kwargs", "kwargs_json", default=None, metavar="JSON", help="A JSON object (default {})."
)
@click.option(
    "--fault",
    type=click.Choice(REPRO_FAULTS),
    default=None,
    help="What hits the worker running the task (default kill_child: SIGKILL its pool process).",
)
@click.option(
    "--at",
    default=None,
    metavar="TRIGGER",
    help="checkpoint:NAME (your task calls celery_chaos.checkpoint(NAME); the fault lands"
    " exactly there) or seconds:S after dispatch (no instrumentation needed).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="local",
    show_default=True,
    help="local: worker processes here; docker: containers (--worker-image must hold your app).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one Celery setting (VALUE is JSON when it parses, e.g. true, 5, {...}).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="An environment variable for the workers and for importing the app here.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Workers (default 1).")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=None, help="Pool size (default 2)."
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default=None,
    help="Worker pool (default prefork).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after S seconds (default 60). A PENDING task is only known at the timeout.",
)
@click.option(
    "--file",
    "repro_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A repro file: probes to read afterwards, and defaults for every option above.",
)
@click.option(
    "--report-dir",
    type=click.Path(path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where the run folder is written.",
)
@click.option("--worker-image", default=None, help="docker backend: an image containing your app.")
@click.option("-v", "--verbose", is_flag=True, help="Print every history event live.")
def repro(
    app_spec: str | None,
    task: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    fault: str | None,
    at: str | None,
    backend: str,
    overrides: tuple[str, ...],
    env: tuple[str, ...],
    workers: int | None,
    concurrency: int | None,
    pool: str | None,
    timeout: float | None,
    repro_file: Path | None,
    report_dir: Path,
    worker_image: str | None,
    verbose: bool,
) -> None:
    """Kill a worker of YOUR app mid-task and report what your configuration does to the task.

    Starts workers of --app with your own settings (nothing is overridden unless you --set it;
    only the broker URL is replaced by the harness's own Redis broker), dispatches --task,
    injects --fault at --at and prints the verdict: LOST, PENDING (until the visibility
    timeout), RECOVERED, DUPLICATED or OK, the settings that caused it, and the probes of --file.

    Exit 0: the task completed exactly once and no lock probe is held; 1: it was lost, pending,
    duplicated or looped, or a lock is still held; 2: the repro could not be carried out (bad
    input, app not importable, the fault never hit the task); 130: interrupted.
    """
    from celery_chaos.run.runner import RunOptions
    from celery_chaos.tools import repro as repro_run

    if worker_image and backend != "docker":
        raise UsageProblem("--worker-image: only with --backend docker")
    try:
        spec = repro_run.merge(
            repro_run.load_spec(repro_file),
            app=app_spec,
            task=task,
            args=_json_option(args_json, "--args", list),
            kwargs=_json_option(kwargs_json, "--kwargs", dict),
            fault=fault,
            at=at,
            celery=repro_run.parse_settings(overrides) or None,
            env=dict(repro_run.parse_assignment(item, "--env") for item in env) or None,
            workers=workers,
            concurrency=concurrency,
            pool=pool,
            timeout=timeout,
        )
    except repro_run.ReproError as error:
        raise UsageProblem(str(error)) from None
    _writable_report_dir(report_dir)
    options = RunOptions(
        backend=backend,
        report_dir=report_dir,
        verbose=verbose,
        backend_options={"worker_image": worker_image} if worker_image else {},
    )
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        outcome = repro_run.run_repro(spec, options, Path.cwd(), log=_plain)
    except KeyboardInterrupt:
        click.echo("celery-chaos: interrupted; everything started was stopped", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except (repro_run.ReproError, BackendError) as error:
        raise UsageProblem(str(error)) from None
    _print_repro(outcome)
    sys.exit(outcome.exit_code)


@main.command(name="audit")
@click.option(
    "--app",
    "app_spec",
    required=True,
    metavar="MODULE:ATTR",
    help="Your Celery app, importable from the current directory (e.g. myproject.celery:app).",
)
@click.option(
    "--max-eta",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="The longest ETA/countdown your code uses (configuration cannot show it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def audit_app(app_spec: str, max_eta: float | None, as_json: bool) -> None:
    """List the worker-death risks in your app's configuration, without running anything.

    Imports --app (no instrumentation), reads its effective settings (app.conf, including
    broker_transport_options) and every registered task's acks_late, reject_on_worker_lost,
    time_limit and soft_time_limit. Each finding gives its level, the setting, what it causes
    when a worker dies and the built-in scenario that demonstrates it (celery-chaos run
    scenarios/ --only NAME). Exit 1 when a finding is an error, 0 otherwise, 2 when the app
    cannot be imported.
    """
    from celery_chaos.tools import audit as auditing

    try:
        app = auditing.import_app(app_spec, Path.cwd())
        settings = auditing.collect(app)
    except auditing.AppImportError as error:
        raise UsageProblem(f"--app {error}") from None
    except Exception as error:  # finalizing the app imports the user's task modules
        raise UsageProblem(f"--app {app_spec}: {type(error).__name__}: {error}") from None
    findings = auditing.audit(settings.config, settings.tasks, settings.celery_version, max_eta)
    if as_json:
        document = auditing.report_document(app_spec, settings, findings)
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        _print_audit(app_spec, settings, findings)
    sys.exit(auditing.exit_code(findings))


def _print_audit(app_spec: str, settings: Any, findings: list) -> None:
    """One block per finding: plain text that reads the same in a terminal and a CI log."""
    import textwrap

    from rich.text import Text

    from celery_chaos.tools import audit as auditing

    broker = auditing.redact(settings.config["broker_url"]) or "amqp (Celery's default)"
    version = ".".join(map(str, settings.celery_version))
    _plain(f"{app_spec}: Celery {version}, broker {broker}")
    _plain(f"tasks: {', '.join(sorted(settings.tasks)) or '(none registered)'}")
    styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for finding in findings:
        console.print()
        console.print(Text(f"{finding.level.upper():<9}", style=styles[finding.level]), end="")
        _plain(finding.setting)
        for line in textwrap.wrap(finding.causes, width=90):
            _plain(f"         {line}")
        if finding.tasks:
            _plain(f"         tasks: {', '.join(finding.tasks)}")
        if finding.scenario:
            _plain(f"         shown by: celery-chaos run scenarios/ --only {finding.scenario}")
    counts = {level: sum(1 for f in findings if f.level == level) for level in auditing.LEVELS}
    _plain("\n" + ", ".join(f"{level}: {n}" for level, n in counts.items()))


if __name__ == "__main__":  # pragma: no cover
    main()
