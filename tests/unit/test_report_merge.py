"""Reading shard folders: recorded durations for balancing, junit/summary merged from files.
(The merge of folders written by real runs is in tests/integration/test_matrix.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from celery_chaos.tools.matrix import table
from celery_chaos.tools.matrix.merge import merged_junit, merged_summary, recorded_durations


def scenario_folder(run_dir: Path, name: str, seconds: float) -> None:
    folder = run_dir / name
    folder.mkdir(parents=True)
    document = {"scenario": name, "status": "passed", "timings": {"total": seconds}}
    (folder / "result.json").write_text(json.dumps(document))


def test_durations_come_from_a_run_folder_or_a_matrix(tmp_path: Path) -> None:
    scenario_folder(tmp_path / "run", "a", 12.5)
    scenario_folder(tmp_path / "run", "b", 3.0)
    assert recorded_durations(tmp_path / "run") == {"a": 12.5, "b": 3.0}
    matrix = table.new_matrix([{"label": "5.4"}])
    matrix["cells"] = [{"scenario": "a", "column": "5.4", "seconds": 7.0, "status": "passed",
                        "counts": {}, "report": "x"}]  # fmt: skip
    (tmp_path / "m").mkdir()
    table.write(matrix, tmp_path / "m")
    assert recorded_durations(tmp_path / "m") == {"a@5.4": 7.0}


def junit(cases: list[tuple[str, str | None]]) -> str:
    body = "".join(
        f'<testcase name="{n}">' + (f'<{k} message="m"/>' if k else "") + "</testcase>"
        for n, k in cases
    )
    failures = sum(1 for _, k in cases if k == "failure")
    return f'<testsuite tests="{len(cases)}" failures="{failures}" errors="0">{body}</testsuite>'


def test_junit_and_summary_add_up(tmp_path: Path) -> None:
    one, two = tmp_path / "1", tmp_path / "2"
    for folder, cases, rows in (
        (one, [("a", None)], ["| a | passed | 1 | ok=1 | met | [report](a/report.html) |"]),
        (two, [("b", "failure"), ("c", None)], ["| b | failed | 1 | lost=1 | lost | x |",
                                                "| c | passed | 1 | ok=1 | met | x |"]),
    ):  # fmt: skip
        folder.mkdir()
        (folder / "junit.xml").write_text(junit(cases))
        header = ["| scenario | status | tasks | verdicts | expectation | report |", "|---|"]
        (folder / "summary.md").write_text("\n".join(["## run", "", "x", "", *header, *rows]))
    merged = merged_junit([one, two])
    assert 'tests="3"' in merged and 'failures="1"' in merged and merged.count("<testcase") == 3
    summary = merged_summary([one, two])
    assert "2/3 scenarios met their expectations." in summary
    assert summary.count("| scenario | status |") == 1 and "| b | failed |" in summary
