"""``celery-chaos matrix`` with real installs of three Celery minors (uv, cached: a warm cache
builds each environment in about a second), shard folders of real runs merged into one report,
and the matrix's own bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.integration import cli_support

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# Soft shutdown came in Celery 5.5 (celery/celery#9213): lost before, ok from 5.5 on.
CELERY, KOMBU = "5.3,5.4,5.5", "5.3,5.4,5.5"
SOFT = "cold-shutdown-soft-timeout"


def celery_chaos(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return cli_support.celery_chaos(*args, timeout=timeout)


def only_run_dir(report_dir: Path) -> Path:
    (found,) = [p for p in report_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    return found


def test_three_celery_minors_in_shards_merged_into_one_matrix(tmp_path: Path) -> None:
    shards = []
    for index in (1, 2):
        report_dir = tmp_path / f"shard-{index}"
        done = celery_chaos(
            "matrix", "--celery", CELERY, "--kombu", KOMBU, "--only", SOFT,
            "--shard", f"{index}/2", "--report-dir", str(report_dir),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        shards.append(only_run_dir(report_dir))
    cells_per_shard = [len(json.loads((s / "matrix.json").read_text())["cells"]) for s in shards]
    assert sorted(cells_per_shard) == [1, 2]  # 3 cells, split deterministically

    merged = tmp_path / "merged"
    done = celery_chaos("report", "merge", *map(str, shards), "--out", str(merged))
    assert done.returncode == 0, done.stdout + done.stderr
    matrix = json.loads((merged / "matrix.json").read_text())
    cells = {c["column"]: c for c in matrix["cells"]}
    assert sorted(cells) == ["celery-5.3_kombu-5.3", "celery-5.4_kombu-5.4", "celery-5.5_kombu-5.5"]
    for column, found in cells.items():
        minor = column.split("_")[0].removeprefix("celery-")
        assert found["versions"]["celery"].startswith(f"{minor}."), found["versions"]  # workers'
        assert found["versions"]["kombu"].startswith(f"{minor}.")
        assert found["status"] == "passed", found  # each met its per-version expectation
    assert cells["celery-5.3_kombu-5.3"]["counts"].get("lost") == 1
    assert cells["celery-5.4_kombu-5.4"]["counts"].get("lost") == 1
    assert cells["celery-5.5_kombu-5.5"]["counts"] == {"ok": 1}
    markdown = (merged / "matrix.md").read_text()
    assert f"| {SOFT} | passed: lost=1" in markdown and "**passed: ok=1 \\***" in markdown
    index = (merged / "index.html").read_text()
    assert "celery-5.5_kombu-5.5/cold-shutdown-soft-timeout/report.html" in index
    # Exactly the cells whose counts differ from the baseline (5.3) are marked: 5.5 always (ok
    # instead of lost); 5.4 too when Celery < 5.5 reported WorkerLostError in one run and not the
    # other (the ``failed`` label varies between runs there: real Celery behaviour).
    baseline = cells["celery-5.3_kombu-5.3"]["counts"]
    changed = [column for column, found in cells.items() if found["counts"] != baseline]
    assert "celery-5.5_kombu-5.5" in changed
    assert index.count("matrix-cell changed") == len(changed)
    for column in cells:
        assert (merged / column / SOFT / "report.html").exists()
        assert (merged / column / "junit.xml").exists()


def test_run_shards_merge_into_one_junit_summary_and_index(tmp_path: Path) -> None:
    names = ["defaults-child-kill", "broker-restart-aof"]
    shard_dirs = []
    for index in (1, 2):
        report_dir = tmp_path / f"shard-{index}"
        only = [arg for name in names for arg in ("--only", name)]
        done = celery_chaos("run", *only, "--shard", f"{index}/2", "--report-dir", str(report_dir))
        assert done.returncode == 0, done.stdout + done.stderr
        shard_dirs.append(only_run_dir(report_dir))
    ran = [sorted(p.parent.name for p in d.glob("*/result.json")) for d in shard_dirs]
    assert sorted(n for shard in ran for n in shard) == sorted(names) and all(ran)

    merged = tmp_path / "merged"
    done = celery_chaos("report", "merge", *map(str, shard_dirs), "--out", str(merged))
    assert done.returncode == 0, done.stdout + done.stderr
    suite = ET.parse(merged / "junit.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert sorted(c.get("name") for c in suite.findall("testcase")) == sorted(names)
    summary = (merged / "summary.md").read_text()
    assert "2/2 scenarios met their expectations." in summary
    index = (merged / "index.html").read_text()
    assert all(f"{name}/report.html" in index for name in names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--shard", "3/2"], "--shard: '3/2': I must be between 1 and N"),
        (["run", "--durations-from", "."], "--durations-from: only with --shard"),
        (["matrix"], "--celery: give the versions to compare"),
        (["matrix", "--celery", "5.x"], "--celery: '5.x' is neither a version"),
        (["matrix", "--celery", "5.4,5.5", "--baseline", "6"], "--baseline: '6' is not a column"),
        (["report", "merge", "tests", "--out", "tests"], "--out: tests: exists and is not empty"),
        (
            ["matrix", "--celery", "5.4", "--app", "nope.app:app"],
            "--app nope.app:app: cannot import",
        ),
    ],
)
def test_bad_matrix_and_shard_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    done = celery_chaos(*args, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"celery-chaos: error: {message}"), line
