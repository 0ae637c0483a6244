"""Wall time of ``celery-chaos matrix``: the default suite x N version sets.

    python benchmarks/matrix_wall.py [--celery 5.3,5.4,5.5] [--kombu 5.3,5.4,5.5] [--jobs 1]
                                     [--report-dir DIR] [--json PATH]

Runs the real command (workers from uv-built environments, reusing the cache unless
``CELERY_CHAOS_ENV_DIR`` points elsewhere) and prints: total wall time, the matrix's own time,
each environment's build time (and whether it came from the cache), the sum of the cells' run
times per column, and the matrix table (matrix.md) the run produced.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def newest_run(report_dir: Path) -> Path:
    return max(
        (p for p in report_dir.iterdir() if (p / "matrix.json").exists()), key=lambda p: p.name
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--celery", default="5.3,5.4,5.5")
    parser.add_argument("--kombu", default="5.3,5.4,5.5")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--report-dir", type=Path, default=Path("reports/bench-matrix"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    command = [
        *(sys.executable, "-m", "celery_chaos.cli", "matrix"),
        *("--celery", args.celery, "--kombu", args.kombu, "--jobs", str(args.jobs)),
        *("--report-dir", str(args.report_dir)),
    ]
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    run_dir = newest_run(args.report_dir)
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
    print(json.dumps(figures, indent=2))
    print((run_dir / "matrix.md").read_text())
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
