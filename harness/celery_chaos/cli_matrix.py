"""``celery-chaos matrix`` (the same scenarios once per version set) and ``celery-chaos report
merge`` (shard folders into one report), plus the ``--shard`` option ``run`` shares."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from celery_chaos.cli_common import (
    UsageProblem,
    check_report_dir,
    console,
    interruptible,
    load_scenarios,
    print_line,
    report_dir_option,
)
from celery_chaos.core.shards import ShardError, parse_shard, select

LIBRARY_OPTIONS = ("celery", "kombu", "billiard", "redis-py")


def shard_options(command: Any) -> Any:
    """``--shard I/N`` and ``--durations-from DIR`` (a previous run, to balance by time)."""
    command = click.option(
        "--durations-from",
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        default=None,
        help="A previous run folder: balance shards by its recorded durations.",
    )(command)
    return click.option(
        "--shard",
        default=None,
        metavar="I/N",
        help="Run only slice I of N (deterministic, balanced; CI fans out over I).",
    )(command)


def parse_shard_option(shard: str | None, durations_from: Path | None) -> Any:
    """``(I, N)`` and the recorded durations, or ``(None, None)``; bad input exits 2."""
    from celery_chaos.tools.matrix.merge import recorded_durations

    if shard is None:
        if durations_from is not None:
            raise UsageProblem("--durations-from: only with --shard")
        return None, None
    try:
        parsed = parse_shard(shard)
    except ShardError as error:
        raise UsageProblem(str(error)) from None
    return parsed, recorded_durations(durations_from) if durations_from else None


def shard_scenarios(scenarios: list, shard: str | None, durations_from: Path | None) -> list:
    """The scenarios of ``run --shard I/N`` (all of them without ``--shard``)."""
    parsed, durations = parse_shard_option(shard, durations_from)
    if parsed is None:
        return scenarios
    chosen = select(scenarios, parsed, lambda s: s.name, durations)
    print_line(f"shard {parsed[0]}/{parsed[1]}: {', '.join(s.name for s in chosen) or '(none)'}")
    return chosen


def _version_sets(
    matrix_file: Path | None, pins: dict[str, str | None], extras: tuple[str, ...] = ()
) -> list:
    from celery_chaos.tools.matrix import version_sets as vs

    try:
        if matrix_file is not None:
            if any(pins.values()):
                raise vs.VersionSetError("--matrix-file: not together with --celery/--kombu/...")
            columns = vs.from_file(matrix_file)
        else:
            columns = vs.from_options(pins)
        if not columns:
            raise vs.VersionSetError("--celery: give the versions to compare (or --matrix-file)")
        columns = vs.with_extras(columns, list(extras), "--extra") if extras else columns
        vs.check_unique(columns)
    except vs.VersionSetError as error:
        raise UsageProblem(str(error)) from None
    return columns


def _with_app(scenarios: list, app_spec: str | None) -> list:
    """``--app``: every scenario's workers run that app, checked here first (it imports and
    registers the workload's tasks) as ``workers.app`` would be."""
    from celery_chaos.core.scenario_base import ScenarioError
    from celery_chaos.run.preflight import check_app

    for scenario in scenarios if app_spec else []:
        scenario.workers.app = app_spec
        try:
            check_app(scenario, "--app", Path.cwd())
        except ScenarioError as error:
            raise UsageProblem(str(error).replace("--app: workers.app: ", "--app ")) from None
    return scenarios


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--celery", default=None, help="Celery versions, comma-separated: 5.3,5.4,5.5.")
@click.option("--kombu", default=None, help="Kombu version(s): one for all or one per column.")
@click.option("--billiard", default=None, help="billiard version(s), as --kombu.")
@click.option("--redis-py", "redis_py", default=None, help="redis-py version(s), as --kombu.")
@click.option(
    "--matrix-file",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML with version_sets: [{celery: '5.4', kombu: '5.4'}, ...].",
)
@click.option(
    "--extra",
    "extras",
    multiple=True,
    metavar="REQUIREMENT",
    help="One more package for every version set's environment, e.g. 'setuptools<70'.",
)
@click.option("--baseline", default=None, help="The column others are compared to (first).")
@click.option("--only", multiple=True, metavar="NAME", help="Run only this scenario (repeatable).")
@click.option("--app", "app_spec", default=None, help="Your Celery app (e.g. proj.celery:app).")
@report_dir_option("matrix folders are")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cells run at the same time.",
)
@click.option("--find-links", multiple=True, help="A wheelhouse folder (repeatable).")
@click.option("--index-url", default=None, help="A package index instead of PyPI.")
@click.option("--offline", is_flag=True, help="No network: only --find-links/--index-url.")
@click.option(
    "--env-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the environments are cached (default ~/.cache/celery-chaos/envs).",
)
@click.option("--seed", type=int, default=None, help="Seed for random triggers.")
@shard_options
@click.option("-v", "--verbose", is_flag=True, help="Print every history event live.")
def matrix(paths: tuple[Path, ...], celery: str | None, kombu: str | None,
           billiard: str | None, redis_py: str | None, matrix_file: Path | None,
           extras: tuple[str, ...],
           baseline: str | None, only: tuple[str, ...], app_spec: str | None, report_dir: Path,
           jobs: int, find_links: tuple[str, ...], index_url: str | None, offline: bool,
           env_dir: Path | None, seed: int | None, shard: str | None,
           durations_from: Path | None, verbose: bool) -> None:  # fmt: skip
    """Run the scenarios in PATHS (none: the built-in suite) once per version set, workers
    from a uv-built environment per set (cached), and print one table: scenarios down, version
    sets across, cells differing from the baseline marked.

    Writes REPORT_DIR/<timestamp>/ with matrix.json, matrix.md, index.html and a run folder per
    version set. Exit 0 every cell met its expectation for its versions (``expect_when``), 1 one
    did not, 3 one was inconclusive, 2 bad input or an environment that could not be built.
    """
    from celery_chaos.run.runner import RunOptions
    from celery_chaos.tools.matrix import envs, table
    from celery_chaos.tools.matrix.run import MatrixOptions, run_matrix

    pins = dict(zip(LIBRARY_OPTIONS, (celery, kombu, billiard, redis_py), strict=True))
    columns = _version_sets(matrix_file, pins, extras)
    labels = [column.label for column in columns]
    if baseline is not None and baseline not in labels:
        raise UsageProblem(f"--baseline: {baseline!r} is not a column ({', '.join(labels)})")
    scenarios = _with_app(load_scenarios(paths, only, import_app=not app_spec), app_spec)
    parsed, durations = parse_shard_option(shard, durations_from)
    check_report_dir(report_dir)
    options = MatrixOptions(
        run=RunOptions("local", report_dir, seed, verbose),
        version_sets=columns,
        sources=envs.Sources(find_links, index_url, offline),
        env_root=env_dir,
        baseline=baseline,
        jobs=jobs,
        shard=parsed,
        durations=durations,
    )
    try:
        result, matrix_dir = interruptible(lambda: run_matrix(scenarios, options, log=print_line))
    except envs.EnvBuildError as error:
        raise UsageProblem(f"matrix: {error}") from None
    console.print(table.console_table(result))
    console.print(f"Matrix: {matrix_dir / 'index.html'} ({result['seconds']}s)")
    sys.exit(table.exit_code(result))


@click.group(name="report")
def report_group() -> None:
    """Work with report folders."""


@report_group.command(name="merge")
@click.argument(
    "dirs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False)
)
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The merged folder (new or empty).")  # fmt: skip
def report_merge(dirs: tuple[Path, ...], out: Path) -> None:
    """Combine shard folders (of ``run --shard`` or ``matrix --shard``) into one folder: one
    junit.xml, summary.md, index.html and, for matrices, one matrix.json/matrix.md. Exit as the
    merged results: 0 all passed, 1 one failed, 3 inconclusive, 2 error."""
    from celery_chaos.tools.matrix import table
    from celery_chaos.tools.matrix.merge import MergeError, merge, merged_exit_code

    try:
        merged = merge(list(dirs), out)
    except MergeError as error:
        raise UsageProblem(str(error)) from None
    if isinstance(merged, dict):
        console.print(table.console_table(merged))
    print_line(f"merged {len(dirs)} folders into {out} (index: {out / 'index.html'})")
    sys.exit(merged_exit_code(out))
