"""Wall time of ``celery-chaos matrix``: the default suite x N version sets.

    python benchmarks/matrix_wall.py [--celery 5.3,5.4,5.5] [--kombu 5.3,5.4,5.5] [--jobs 1]
                                     [--only NAME]... [--report-dir DIR] [--json PATH] [--smoke]

Runs the real command (workers from uv-built environments, reusing the cache unless
``CELERY_CHAOS_ENV_DIR`` points elsewhere) and prints: total wall time, the matrix's own time,
each environment's build time (and whether it came from the cache), the sum of the cells' run
times per column, and the matrix table (matrix.md) the run produced. The figures have no target
(informative): the matrix costs what the suite costs, once per column.

``--smoke``: one column (the Celery and Kombu minor versions installed here), one short scenario,
a temporary report folder: proves the script and the matrix run, in seconds once uv's cache has
the packages. Exit 0 when the matrix wrote matrix.json (its own exit code is printed), 2 when not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

SMOKE_SCENARIO = "defaults-child-kill"


def newest_run(report_dir: Path) -> Path | None:
    runs = [p for p in report_dir.glob("*") if (p / "matrix.json").exists()]
    return max(runs, key=lambda p: p.name) if runs else None


def minor(package: str) -> str:
    """The installed ``package``'s major.minor: the smoke column."""
    return ".".join(metadata.version(package).split(".")[:2])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--celery", default="5.3,5.4,5.5")
    parser.add_argument("--kombu", default="5.3,5.4,5.5")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--only", action="append", default=[], help="scenario name (repeatable)")
    parser.add_argument("--report-dir", type=Path, default=Path("reports/bench-matrix"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="one column, one scenario")
    args = parser.parse_args()
    if args.smoke:
        args.celery, args.kombu = minor("celery"), minor("kombu")
        args.only = args.only or [SMOKE_SCENARIO]
    return args


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="chaos-matrix-bench-") as scratch:
        if args.smoke:
            args.report_dir = Path(scratch)
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    command = [
        *(sys.executable, "-m", "celery_chaos.cli", "matrix"),
        *("--celery", args.celery, "--kombu", args.kombu, "--jobs", str(args.jobs)),
        *("--report-dir", str(args.report_dir)),
        *(arg for name in args.only for arg in ("--only", name)),
    ]
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    run_dir = newest_run(args.report_dir) if args.report_dir.is_dir() else None
    if run_dir is None:
        tail = (done.stdout + done.stderr)[-1500:]
        print(f"matrix exit {done.returncode}, no matrix.json written:\n{tail}", file=sys.stderr)
        return 2
    matrix = json.loads((run_dir / "matrix.json").read_text())
    figures = {
        "wall_seconds": round(wall, 1),
        "matrix_seconds": matrix["seconds"],
        "exit_code": done.returncode,
        "cells": len(matrix["cells"]),
        "columns": {
            column["label"]: {
                "env_seconds": column["env_seconds"],
                "env_cached": column["env_cached"],
                "cells_seconds": round(
                    sum(
                        c["seconds"] or 0 for c in matrix["cells"] if c["column"] == column["label"]
                    ),
                    1,
                ),
            }
            for column in matrix["columns"]
        },
    }
    print_figures(figures)
    print((run_dir / "matrix.md").read_text())
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if args.smoke:
        print("smoke run (--smoke): one column, one scenario: proves the script runs, not a figure")
    return 0


def print_figures(figures: dict) -> None:
    """Each figure beside its goal (none: informative)."""
    goal = "target: none (informative)"
    print(f"matrix wall time (celery-chaos matrix, {figures['cells']} cells,"
          f" exit {figures['exit_code']}): {figures['wall_seconds']:.1f} s"
          f" (matrix itself {figures['matrix_seconds']:.1f} s)   {goal}")  # fmt: skip
    for label, column in figures["columns"].items():
        cached = "cached" if column["env_cached"] else "built"
        print(f"  {label}: environment {column['env_seconds']:.1f} s ({cached}),"
              f" cells {column['cells_seconds']:.1f} s   {goal}")  # fmt: skip
    print()


if __name__ == "__main__":
    sys.exit(main())
