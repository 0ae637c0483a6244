"""The ``celery-chaos`` command line.

Exit codes of ``run``: 0 every scenario passed (or was skipped: an optional extra such as gevent
is not installed; ``--require-all`` makes that a 2); 1 at least one failed (an expectation not
met, or with ``--strict`` a non-zero anomaly verdict no expectation names); 3 none failed but one
was inconclusive (a fault skipped or failed); 2 bad input or an environment that cannot run a
scenario (the message names the file/field and why); 130 interrupted. When scenarios end
differently the first of 1, 3, 2 that applies wins.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import click

from celery_chaos.run.interpreter import refuse_old_celery

# Before any import that loads Celery: an app's Celery older than the harness works with is
# refused in one line (exit 2), not met with a traceback from deep inside it.
refuse_old_celery()

from celery_chaos.cli_common import (
    EXIT_UNUSABLE,
    UsageProblem,
    backend_option,
    builtin_suite,
    check_apps_on,
    check_python_fits,
    check_report_dir,
    console,
    interruptible,
    load_scenarios,
    print_line,
    python_option,
    report_dir_option,
    settings_option,
    staged_agent,
    strictness_options,
    workers_python,
)
from celery_chaos.cli_matrix import matrix, report_group, shard_options, shard_scenarios
from celery_chaos.cli_schema import schema
from celery_chaos.cli_tools import audit_app, repro
from celery_chaos.core.scenario import BROKER_KINDS, with_broker_kind
from celery_chaos.faults.registry import FAULTS
from celery_chaos.placements import PLACEMENTS, BackendError

__all__ = ["EXIT_UNUSABLE", "UsageProblem", "builtin_suite", "console", "main"]


def _print_result(result: object) -> None:
    from celery_chaos.report.files import scenario_footer, scenario_table, scenario_title

    console.print(scenario_title(result), soft_wrap=True)  # a whole line, never wrapped
    console.print(scenario_table(result))
    print_line(scenario_footer(result))


def _require_engine(backend: str) -> None:
    """With no Docker engine a docker run cannot start at all: one line, exit 2, at once."""
    if backend != "docker":
        return
    from celery_chaos.placements.docker.images import engine_available

    ok, reason = engine_available()
    if not ok:
        raise UsageProblem(f"--backend docker: {reason}")


class JobsParam(click.ParamType):
    """``--jobs``: ``auto`` (a scenario starts when the machine has room, ``run.admission``) or
    a fixed number at once (1-64)."""

    name = "auto|N"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if value is None or str(value).strip().lower() == "auto":
            return None
        try:
            number = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither auto nor a number", param, ctx)
        if not 1 <= number <= 64:
            self.fail(f"{number} is not in 1-64", param, ctx)
        return number


def _image_options(backend: str, worker_image: str | None, redis_image: str | None) -> dict:
    """The docker backend's image options; given to another backend they are bad input."""
    images = {"worker_image": worker_image, "redis_image": redis_image}
    chosen = {key: value for key, value in images.items() if value}
    if chosen and backend != "docker":
        raise UsageProblem("--worker-image/--redis-image: only with --backend docker")
    return chosen


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="celery-chaos")
def main() -> None:
    """Kill real Celery workers mid-task and prove what happened to every task."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@report_dir_option("run folders are")
@click.option("--seed", type=int, default=None, help="Seed for random triggers (printed; replays).")
@backend_option("local: processes on this machine; docker: containers via Testcontainers.")
@click.option("--only", multiple=True, metavar="NAME", help="Run only this scenario (repeatable).")
@click.option(
    "--broker",
    type=click.Choice(BROKER_KINDS),
    default=None,
    help="Run every scenario on this broker (default: each scenario's broker.kind, redis).",
)
@click.option("--worker-image", default=None, help="docker backend: the worker image to use.")
@click.option("--redis-image", default=None, help="docker backend: the Redis image to use.")
@shard_options
@strictness_options
@click.option("-v", "--verbose", is_flag=True, help="Print every history event live.")
@click.option(
    "-j",
    "--jobs",
    type=JobsParam(),
    default="auto",
    help="Scenarios run at once: auto (default: one more whenever the CPUs were mostly idle "
    "for a second and memory has room; docs: --jobs) or a number; exclusive ones run alone.",
)
@python_option
@settings_option
def run(
    paths: tuple[Path, ...],
    report_dir: Path,
    seed: int | None,
    backend: str,
    only: tuple[str, ...],
    broker: str | None,
    worker_image: str | None,
    redis_image: str | None,
    shard: str | None,
    durations_from: Path | None,
    strict: bool,
    require_all: bool,
    verbose: bool,
    jobs: int | None,
    python: str | None,
) -> None:
    """Run the scenarios in PATHS (files or folders; none: the built-in suite) and check every
    task's fate.

    Writes REPORT_DIR/<timestamp>/ with one folder per scenario (result.json, history.jsonl,
    logs/), junit.xml and summary.md; REPORT_DIR/latest points at it. Exit 0 all passed (or
    skipped: an optional extra missing), 1 one failed, 3 one inconclusive (a fault did not land),
    2 bad input or not runnable here, 130 interrupted (1 before 3 before 2).
    """
    from celery_chaos.report.progress import live_progress
    from celery_chaos.run.admission import auto_cap
    from celery_chaos.run.runner import RunOptions, run_suite
    from celery_chaos.run.versions import header, library_versions
    from celery_chaos.tools.matrix.merge import previous_durations

    chosen = workers_python(python, backend)  # a foreign one imports the app, not this one
    scenarios = load_scenarios(paths, only, not worker_image and not chosen.foreign)
    scenarios = shard_scenarios(scenarios, shard, durations_from)
    scenarios = check_python_fits(chosen, [with_broker_kind(s, broker) for s in scenarios])
    backend_options = _image_options(backend, worker_image, redis_image)
    _require_engine(backend)
    check_report_dir(report_dir)
    options = RunOptions(backend, report_dir, seed, verbose, backend_options)
    options.jobs = min(jobs or auto_cap(), len(scenarios))
    options.adaptive = jobs is None
    options.expected_seconds = previous_durations(report_dir)
    options.strict, options.require_all = strict, require_all
    print_line(f"celery-chaos: {header(library_versions())}")
    live = console.is_terminal and options.jobs > 1
    try:
        with staged_agent(chosen) as on_python, live_progress(console, live) as progress:
            options.backend_options |= on_python
            work = partial(run_suite, scenarios, options, print_line, _print_result, progress)
            suite = interruptible(work, options.stop)
    except BackendError as error:
        raise UsageProblem(str(error)) from None
    _print_summary(suite)
    sys.exit(suite.exit_code)


def _print_mismatches(suite: Any) -> None:
    """One line per distinct difference between the dispatching client's Celery (this
    process's) and the workers' (run.versions)."""
    from celery_chaos.run.versions import MISMATCH

    said = {r.versions.get(MISMATCH) for r in suite.results if r.versions.get(MISMATCH)}
    for line in sorted(said):
        print_line(f"celery-chaos: {line}")


def _print_summary(suite: Any) -> None:
    """The closing line, and one line per scenario skipped for a missing extra (with the hint):
    a skip exits 0, so it must be said, not only shown in the report."""
    _print_mismatches(suite)
    skipped = suite.skipped
    also = f", {len(skipped)} skipped (an optional extra is not installed)" if skipped else ""
    console.print(
        f"\n{suite.passed}/{len(suite.results)} scenarios met their expectations{also}."
        f" Report: {suite.run_dir / 'index.html'}"
    )
    for result in skipped:
        print_line(f"   skipped {result.scenario.name}: {result.reason}")


def _fault_table() -> Any:
    from rich.table import Table

    table = Table(title="fault kinds", title_justify="left")
    for column in ("kind", "what it does", "needs a running task", "backends"):
        table.add_column(column)
    for kind in FAULTS.values():
        needs = "yes" if kind.needs_task else ""
        table.add_row(kind.name, kind.summary, needs, ", ".join(sorted(kind.placements)))
    return table


@main.command(name="list")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@python_option
@settings_option
def list_scenarios(paths: tuple[Path, ...], python: str | None) -> None:
    """Show the scenarios in PATHS (none: the built-in suite), their faults and what each
    expects, then the fault kinds and which backends can inject each."""
    from rich.table import Table

    table = Table(show_lines=True)
    for column in ("scenario", "faults", "expects", "description"):
        table.add_column(column)
    chosen = workers_python(python)  # the app imports on its own interpreter, not here
    scenarios = load_scenarios(paths, import_app=not chosen.foreign)
    check_apps_on(chosen, scenarios)
    for scenario in scenarios:
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
@click.option("--run-id", default=None, help="Only this run's leftovers (default: all dead runs).")
@click.option(
    "--backend",
    "which",
    type=click.Choice(["all", *PLACEMENTS]),
    default="all",
    show_default=True,
    help="all: local leftovers, and docker ones where an engine answers.",
)
def cleanup(run_id: str | None, which: str) -> None:
    """Remove what a run killed without a chance to clean up (e.g. kill -9) left behind.

    local: the processes and cgroups named in the state files of runs whose harness is gone
    (matched by pid and start time, never by name; a live run is left alone). docker: containers
    and networks carrying the ``celery-chaos.run`` label; never touches anything else.
    """
    removed: list[str] = []
    if which in ("all", "local"):
        from celery_chaos.placements.local.reaper import cleanup_dead_runs
        from celery_chaos.placements.local.state import state_dir

        console.print(f"local: run state files in {state_dir()}", markup=False)
        from celery_chaos.placements.local.rabbitmq_server import kill_orphans

        local_removed, left_alone = cleanup_dead_runs(run_id)
        removed += local_removed + kill_orphans()
        for line in left_alone:
            console.print(f"left alone: {line}", markup=False)
    if which in ("all", "docker"):
        removed += _cleanup_docker(run_id, required=which == "docker")
    for line in removed:
        console.print(f"removed {line}", markup=False)
    console.print(f"{len(removed)} objects removed")


def _cleanup_docker(run_id: str | None, required: bool) -> list[str]:
    """Remove labelled containers/networks; without an engine that is an error only if asked."""
    from celery_chaos.placements.docker import images as image_builder

    ok, reason = image_builder.engine_available()
    if not ok:
        if required:
            raise UsageProblem(f"docker: {reason}")
        console.print(f"docker: skipped ({reason})", markup=False)
        return []
    from celery_chaos.placements.docker.placement import cleanup as remove_labelled

    return remove_labelled(run_id)


@main.group()
def images() -> None:
    """Build the images the docker backend runs (worker, Redis, RabbitMQ)."""


@images.command(name="build")
@click.option(
    "--offline",
    is_flag=True,
    help="No registry: debootstrap a Debian base and install from a host wheelhouse.",
)
@click.option("--worker-image", default=None, help="Tag for the worker image.")
@click.option("--redis-image", default=None, help="Tag for the Redis image.")
@click.option("--rabbitmq-image", default=None, help="Tag for the RabbitMQ image.")
def images_build(
    offline: bool, worker_image: str | None, redis_image: str | None, rabbitmq_image: str | None
) -> None:
    """Build the worker image, the Redis and RabbitMQ images (with --offline, on a Debian base
    made first; online, pulled from the registry and re-tagged)."""
    from celery_chaos.placements.docker import images as image_builder

    ok, reason = image_builder.engine_available()
    if not ok:
        raise UsageProblem(f"docker: {reason}")
    names = {
        key: value
        for key, value in (
            ("worker_image", worker_image),
            ("redis_image", redis_image),
            ("rabbitmq_image", rabbitmq_image),
        )
        if value
    }
    try:
        built = image_builder.build_images(offline=offline, log=print_line, **names)
    except image_builder.ImageBuildError as error:
        raise UsageProblem(f"images build: {error}") from None
    for role, tag in built.items():
        console.print(f"{role}: {tag}")


main.add_command(repro)
main.add_command(audit_app)
main.add_command(matrix)
main.add_command(report_group)
main.add_command(schema)


if __name__ == "__main__":  # pragma: no cover
    main()
