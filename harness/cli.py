"""The ``celery-chaos`` command line.

Exit codes: 0 every scenario met its expectations; 1 at least one did not; 2 bad input or an
environment that cannot run a scenario (the message names the file/field and why); 130 interrupted.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import click
from rich.console import Console

from harness.backends import BACKENDS, BackendError
from harness.scenario import ScenarioError, load_suite

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 130

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


class UsageProblem(click.ClickException):
    """A one-line error with exit code 2."""

    exit_code = EXIT_UNUSABLE

    def show(self, file: object = None) -> None:
        click.echo(f"celery-chaos: error: {self.message}", err=True)


def _terminate_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _load(paths: tuple[Path, ...], only: tuple[str, ...] = ()) -> list:
    try:
        scenarios = load_suite(list(paths), list(only) or None)
    except ScenarioError as error:
        raise UsageProblem(str(error)) from None
    if not scenarios:
        raise UsageProblem(f"{', '.join(map(str, paths))}: no scenario files (*.yaml) found")
    return scenarios


def _plain(line: str) -> None:
    console.print(line, markup=False, highlight=False)


def _print_result(result: object) -> None:
    from harness.report import scenario_footer, scenario_table

    console.print(scenario_table(result))
    _plain(scenario_footer(result))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="celery-chaos")
def main() -> None:
    """Kill real Celery workers mid-task and prove what happened to every task."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
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
    """Run the scenarios in PATHS (files or folders) and check every task's fate.

    Writes REPORT_DIR/<timestamp>/ with one folder per scenario (result.json, history.jsonl,
    logs/), junit.xml and summary.md; REPORT_DIR/latest points at it.
    """
    from harness.runner import RunOptions, run_suite

    scenarios = _load(paths, only)
    backend_options = {
        key: value
        for key, value in (("worker_image", worker_image), ("redis_image", redis_image))
        if value
    }
    if backend_options and backend != "docker":
        raise UsageProblem("--worker-image/--redis-image: only with --backend docker")
    options = RunOptions(
        backend=backend,
        report_dir=report_dir,
        seed=seed,
        verbose=verbose,
        backend_options=backend_options,
    )
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        suite = run_suite(scenarios, options, log=_plain, on_result=_print_result)
    except KeyboardInterrupt:
        click.echo("celery-chaos: interrupted; everything started was stopped", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BackendError as error:
        raise UsageProblem(str(error)) from None
    passed = sum(1 for r in suite.results if r.status == "passed")
    console.print(
        f"\n{passed}/{len(suite.results)} scenarios met their expectations. Report: {suite.run_dir}"
    )
    sys.exit(suite.exit_code)


@main.command(name="list")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def list_scenarios(paths: tuple[Path, ...]) -> None:
    """Show the scenarios in PATHS, their faults and what each expects."""
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


@main.command()
@click.option("--run-id", default=None, help="Only this run's objects (default: every run's).")
def cleanup(run_id: str | None) -> None:
    """Remove containers and networks a docker-backend run left behind (e.g. after kill -9).

    Finds them by the ``celery-chaos.run`` label; never touches anything else.
    """
    from harness import images as image_builder
    from harness.backends.docker import cleanup as remove_labelled

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
    from harness import images as image_builder

    ok, reason = image_builder.engine_available()
    if not ok:
        raise UsageProblem(f"docker: {reason}")
    names = {
        key: value
        for key, value in (("worker_image", worker_image), ("redis_image", redis_image))
        if value
    }
    built = image_builder.build_images(offline=offline, log=console.print, **names)
    for role, tag in built.items():
        console.print(f"{role}: {tag}")


if __name__ == "__main__":  # pragma: no cover
    main()
