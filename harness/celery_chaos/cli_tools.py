"""``celery-chaos repro`` and ``celery-chaos audit``: commands about *your* app."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from celery_chaos.cli_common import (
    UsageProblem,
    backend_option,
    check_report_dir,
    console,
    interruptible,
    print_line,
    print_styled,
    python_option,
    report_dir_option,
    settings_option,
    staged_agent,
    workers_python,
)
from celery_chaos.core.scenario_parts import POOLS
from celery_chaos.placements import BackendError
from celery_chaos.tools.repro import FAULTS as REPRO_FAULTS


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


def _repro_spec(
    repro_file: Path | None,
    args_json: str | None,
    kwargs_json: str | None,
    overrides: tuple[str, ...],
    env: tuple[str, ...],
    given: dict[str, Any],
) -> Any:
    """The repro file's spec with the command line's options on top (bad input: exit 2)."""
    from celery_chaos.tools import repro as repro_run

    try:
        return repro_run.merge(
            repro_run.load_spec(repro_file),
            args=_json_option(args_json, "--args", list),
            kwargs=_json_option(kwargs_json, "--kwargs", dict),
            workflow=_json_option(given.pop("workflow", None), "--workflow", dict),
            celery=repro_run.parse_settings(overrides) or None,
            env=dict(repro_run.parse_assignment(item, "--env") for item in env) or None,
            **given,
        )
    except repro_run.ReproError as error:
        raise UsageProblem(str(error)) from None


def _worker_image(worker_image: str | None, backend: str) -> dict[str, str]:
    """``--worker-image`` as the docker placement's option (bad input on another backend)."""
    if worker_image and backend != "docker":
        raise UsageProblem("--worker-image: only with --backend docker")
    return {"worker_image": worker_image} if worker_image else {}


def _targeted_task(scenario: Any) -> str:
    """The task the repro's fault aims at (a workflow's member, or the one task)."""
    from celery_chaos.core.workflows import leaves

    return leaves(scenario.workload[0])[scenario.faults[0].target_task() or 0].task


def _print_repro(trial: Any) -> None:
    verdict = trial.verdict
    style = {0: "bold green", 1: "bold red"}.get(trial.exit_code, "bold yellow")
    console.print()
    print_styled(verdict.headline, style)
    if verdict.code == "NOT RUN":
        print_styled(f"Logs: {trial.result.report_dir / 'logs'}")
        return
    for reason in verdict.reasons:
        print_styled(f"  because {reason}")
    print_styled(f"Settings in effect for {_targeted_task(trial.result.scenario)}:")
    for setting in trial.settings:
        print_styled(f"  {setting}")
    if trial.probes:
        print_styled("Invariants:")
    for probe in trial.probes:
        print_styled(
            f"  {probe.get('name')} ({probe.get('kind', '?')}): {probe.get('summary', '')}"
        )
    mismatch = trial.result.versions.get("client_mismatch")  # run.versions.MISMATCH
    if mismatch:
        print_line(f"celery-chaos: {mismatch}")
    print_styled(f"Report: {trial.result.report_dir / 'result.json'}")


@click.command()
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
@backend_option(
    "local: worker processes here; docker: containers (--worker-image must hold your app)."
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
@click.option(
    "--workflow",
    "workflow_json",
    default=None,
    metavar="JSON",
    help="A chain, group or chord to send instead of --task, in the scenario workload form"
    ' (e.g. {"chain": [{"task": "a"}, {"task": "b"}]}); the fault aims at --member.',
)
@click.option(
    "--member",
    type=click.IntRange(min=0),
    default=None,
    help="With --workflow: the number of the task the fault aims at (file order, from 0).",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Workers (default 1).")
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=None, help="Pool size (default 2)."
)
@click.option(
    "--pool",
    type=click.Choice(POOLS),
    default=None,
    help="Worker pool (default prefork; gevent and eventlet are extras to install).",
)
@click.option(
    "--worker-args",
    "worker_args",
    default=None,
    metavar="ARGS",
    help="Your worker command line, e.g. 'celery -A proj worker -O fair --prefetch-multiplier 1'"
    " or just its options: workers start as you start them (-A/-P/-c set --app/--pool/"
    "--concurrency; -n, --detach, --logfile, --broker are refused).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="--fault partition or latency: how long it lasts, in seconds (default 5).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0, min_open=True, max=60),
    default=None,
    help="--fault latency: the delay added to the worker's broker traffic (default 0.2 s).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0, max=3600),
    default=None,
    help="--fault evict: seconds from SIGTERM to SIGKILL if the worker still lives (default 30).",
)
@click.option(
    "--broker",
    type=click.Choice(["redis", "rabbitmq"]),
    default=None,
    help="The broker to start (default: the kind of your app's broker_url; amqp -> rabbitmq).",
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
    help="A repro file: services, setup, invariants to check afterwards (old probes too), and"
    " defaults for every option above.",
)
@click.option(
    "--results",
    "results_choice",
    type=click.Choice(["harness", "app"]),
    default="harness",
    help="Result backend: harness (default): one of your app's kind that the harness runs"
    " (Redis, SQLite, rpc on its broker); app: your app's own, as configured.",
)
@report_dir_option("the run folder is")
@click.option("--worker-image", default=None, help="docker backend: an image containing your app.")
@click.option("-v", "--verbose", is_flag=True, help="Print every history event live.")
@python_option
@settings_option
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
    workflow_json: str | None,
    member: int | None,
    workers: int | None,
    concurrency: int | None,
    pool: str | None,
    worker_args: str | None,
    duration: float | None,
    latency: float | None,
    grace: float | None,
    broker: str | None,
    timeout: float | None,
    repro_file: Path | None,
    results_choice: str,
    report_dir: Path,
    worker_image: str | None,
    verbose: bool,
    python: str | None,
) -> None:
    """Kill a worker of YOUR app mid-task and report what your configuration does to the task.

    Starts workers of --app with your own settings (nothing is overridden unless you --set it;
    only the broker URL is replaced by the harness's own broker of your app's kind: RabbitMQ for
    amqp://, Redis for redis://, and your result backend by one of its kind that the harness
    runs unless --results app), dispatches --task, injects --fault at --at and prints the
    verdict: LOST, PENDING (e.g. until Redis's visibility timeout), RECOVERED, DUPLICATED or
    OK, the settings that caused it, and the invariants of --file, each judged.

    Exit 0: the task completed exactly once and every invariant held; 1: it was lost, pending,
    duplicated or looped, an invariant broke, or its result was not stored; 2: the repro could
    not be carried out (bad input, app not importable, the fault never hit the task); 130:
    interrupted.
    """
    given = dict(app=app_spec, worker_args=worker_args, task=task, workers=workers, timeout=timeout)
    given |= dict(member=member, pool=pool, concurrency=concurrency, broker=broker, fault=fault)
    given |= dict(duration=duration, latency=latency, at=at, workflow=workflow_json, grace=grace)
    chosen = workers_python(python, backend)
    spec = _repro_spec(repro_file, args_json, kwargs_json, overrides, env, given)
    check_report_dir(report_dir)
    with staged_agent(chosen) as on_python:
        images = _worker_image(worker_image, backend) | on_python
        options = dict(backend=backend, report_dir=report_dir, verbose=verbose)
        trial = _run_repro(spec, options | {"backend_options": images}, results_choice == "app")
    _print_repro(trial)
    sys.exit(trial.exit_code)


def _run_repro(spec: Any, given: dict[str, Any], keep_app_results: bool) -> Any:
    """Run the repro here with the ``RunOptions`` ``given`` (bad input found on the way: exit
    2)."""
    from celery_chaos.run.runner import RunOptions
    from celery_chaos.tools import repro as repro_run

    options = RunOptions(**given)

    try:
        return interruptible(
            lambda: repro_run.run_repro(spec, options, Path.cwd(), print_line, keep_app_results),
            options.stop,
        )
    except (repro_run.ReproError, BackendError) as error:
        raise UsageProblem(str(error)) from None


@click.command(name="audit")
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
@click.option(
    "--grace",
    type=click.FloatRange(min=0, max=86_400),
    default=None,
    metavar="SECONDS",
    help="Your platform's SIGTERM-to-SIGKILL grace period (Kubernetes: 30), to check tasks fit.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@python_option
@settings_option
def audit_app(
    app_spec: str, max_eta: float | None, grace: float | None, as_json: bool, python: str | None
) -> None:
    """List the worker-death risks in your app's configuration, without running anything.

    Imports --app (no instrumentation), reads its effective settings (app.conf, including
    broker_transport_options) and every registered task's acks_late, reject_on_worker_lost,
    time_limit and soft_time_limit. Each finding gives its level, the setting, what it causes
    when a worker dies and the built-in scenario that demonstrates it (celery-chaos run --only
    NAME). With --grace, tasks whose time limit does not fit your platform's grace period.
    Settings written where the app never reads them (CELERY_* environment variables, a settings
    object's names outside its namespace) are dead config. Exit 1 when a finding is an error,
    0 otherwise, 2 when the app cannot be imported.
    """
    from celery_chaos.tools import audit as auditing

    chosen = workers_python(python, quiet=as_json)
    try:
        settings = _audited(app_spec, chosen)
    except auditing.AppImportError as error:
        raise UsageProblem(f"--app {error}") from None
    except Exception as error:  # finalizing the app imports the user's task modules
        raise UsageProblem(f"--app {app_spec}: {type(error).__name__}: {error}") from None
    findings = auditing.audit(
        settings.config,
        settings.tasks,
        settings.celery_version,
        max_eta,
        **settings.deploy(grace),
    )
    if as_json:
        document = auditing.report_document(app_spec, settings, findings)
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        _print_audit(app_spec, settings, findings)
    sys.exit(auditing.exit_code(findings))


def _audited(app_spec: str, chosen: Any) -> Any:
    """The app's settings, imported on ``chosen`` (here when it is the harness's own)."""
    from celery_chaos.tools import audit as auditing

    if chosen.foreign:
        from celery_chaos.tools.audit.remote import collect_on

        return collect_on(chosen.path, app_spec, Path.cwd())
    return auditing.collect(auditing.import_app(app_spec, Path.cwd()))


def _print_audit(app_spec: str, settings: Any, findings: list) -> None:
    """One block per finding: plain text that reads the same in a terminal and a CI log."""
    import textwrap

    from rich.text import Text

    from celery_chaos.tools import audit as auditing

    broker = auditing.redact(settings.config["broker_url"]) or "amqp (Celery's default)"
    version = ".".join(map(str, settings.celery_version))
    print_line(f"{app_spec}: Celery {version}, broker {broker}")
    print_line(f"tasks: {', '.join(sorted(settings.tasks)) or '(none registered)'}")
    styles = {"error": "bold red", "warning": "yellow", "info": "cyan"}
    for finding in findings:
        console.print()
        console.print(Text(f"{finding.level.upper():<9}", style=styles[finding.level]), end="")
        print_line(finding.setting)
        for line in textwrap.wrap(finding.causes, width=90):
            print_line(f"         {line}")
        if finding.tasks:
            print_line(f"         tasks: {', '.join(finding.tasks)}")
        if finding.scenario:
            print_line(f"         shown by: {finding.shown_by}")
    counts = {level: sum(1 for f in findings if f.level == level) for level in auditing.LEVELS}
    print_line("\n" + ", ".join(f"{level}: {n}" for level, n in counts.items()))
