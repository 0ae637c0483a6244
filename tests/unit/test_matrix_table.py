"""The matrix table (pure): version sets from options/files, cells differing from the baseline,
matrix.md, the exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.tools.matrix import table
from celery_chaos.tools.matrix.version_sets import (
    VersionSetError,
    check_unique,
    from_file,
    from_options,
)


def test_version_options_line_up_by_column() -> None:
    columns = from_options({"celery": "5.3,5.4,5.5.3", "kombu": "5.3,5.4,5.5", "redis-py": None})
    assert [c.label for c in columns] == [
        "celery-5.3_kombu-5.3",
        "celery-5.4_kombu-5.4",
        "celery-5.5.3_kombu-5.5",
    ]
    assert columns[2].requirements() == ["celery[redis]==5.5.3", "kombu==5.5.*"]


def test_one_value_applies_to_every_column_and_specifiers_pass_through() -> None:
    columns = from_options({"celery": ">=5.4,<5.5,5.6", "redis-py": "5.2"})
    assert [c.requirements() for c in columns] == [
        ["celery[redis]>=5.4,<5.5", "redis==5.2.*"],
        ["celery[redis]==5.6.*", "redis==5.2.*"],
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"celery": "5.3,5.4", "kombu": "5.3,5.4,5.5"}, "--kombu: 3 values; give one"),
        ({"celery": "five"}, "--celery: 'five' is neither a version"),
    ],
)
def test_bad_version_options_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(VersionSetError, match=message):
        from_options(options)


def test_matrix_file(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_text("version_sets:\n  - {celery: '5.4', name: old}\n  - {celery: '5.5'}\n")
    assert [c.label for c in from_file(path)] == ["old", "celery-5.5"]
    path.write_text("version_sets:\n  - {celery: '5.4', flower: '2'}\n")
    with pytest.raises(VersionSetError, match=r"version_sets\[0\]: unknown key 'flower'"):
        from_file(path)
    with pytest.raises(VersionSetError, match="'old' given twice"):
        check_unique([c for c in from_file_twice(tmp_path)])


def from_file_twice(tmp_path: Path) -> list:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "version_sets:\n  - {celery: '5.4', name: old}\n  - {celery: '5.5', name: old}\n"
    )
    return from_file(path)


def cell(scenario: str, column: str, status: str = "passed", **counts: int) -> dict:
    return {"scenario": scenario, "column": column, "status": status, "counts": counts,
            "report": f"{column}/{scenario}/report.html"}  # fmt: skip


def sample() -> dict:
    matrix = table.new_matrix([{"label": "5.4"}, {"label": "5.5"}])
    matrix["cells"] = [
        cell("soft", "5.4", lost=1),
        cell("soft", "5.5", ok=1),
        cell("same", "5.4", ok=2),
        cell("same", "5.5", ok=2),
    ]
    return matrix


def test_a_cell_differing_from_the_baseline_is_marked_everywhere() -> None:
    matrix = sample()
    rows = dict(table.rows(matrix))
    assert [e["changed"] for e in rows["soft"]] == [False, True]
    assert [e["changed"] for e in rows["same"]] == [False, False]
    markdown = table.markdown(matrix)
    assert "| soft | passed: lost=1 | **passed: ok=1 \\*** |" in markdown
    assert "| same | passed: ok=2 | passed: ok=2 |" in markdown


def test_another_baseline_moves_the_mark() -> None:
    matrix = sample() | {"baseline": "5.5"}
    assert [e["changed"] for e in dict(table.rows(matrix))["soft"]] == [True, False]


def test_exit_code_is_the_worst_cell() -> None:
    matrix = sample()
    assert table.exit_code(matrix) == 0
    matrix["cells"].append(cell("x", "5.4", "inconclusive"))
    assert table.exit_code(matrix) == 3
    matrix["cells"].append(cell("y", "5.5", "failed", lost=1))
    assert table.exit_code(matrix) == 1


def test_the_workers_versions_replace_the_harness_ones() -> None:
    from celery_chaos.run.versions import library_versions, worker_versions

    reported = {"python": "3.11.7", "celery": "5.3.6", "kombu": "5.3.7"}
    reported |= {"billiard": "4.2.0", "redis-py": "5.3.1"}
    ready = {"type": "worker_ready", "worker": "w0", "versions": reported}
    events = [{"type": "dispatch"}, {"type": "worker_ready", "worker": "old-agent"}, ready]
    found = worker_versions(events)
    assert {key: found[key] for key in ("celery", "kombu", "billiard", "redis-py")} == {
        "celery": "5.3.6",
        "kombu": "5.3.7",
        "billiard": "4.2.0",
        "redis-py": "5.3.1",
    }
    assert found["worker_python"] == "3.11.7"
    assert found["harness_celery"] == library_versions()["celery"]  # the harness's beside them
    assert worker_versions([{"type": "dispatch"}]) == {}


def test_an_error_cell_prints_its_reason_not_none() -> None:
    """matrix.json holds why a cell did not run; the console, matrix.md and the HTML index say
    it too (they printed ``error: none``)."""
    matrix = sample()
    gevent = cell("green", "5.4", "error") | {
        "reason": "workers.pool: gevent needs the gevent package: No module named 'gevent'"
    }
    setuptools = cell("green", "5.5", "not_runnable") | {
        "reason": "ModuleNotFoundError: No module named 'pkg_resources'\n  traceback line"
    }
    matrix["cells"] += [gevent, setuptools]
    texts = [e["text"] for e in dict(table.rows(matrix))["green"]]
    assert texts == [
        "error: workers.pool: gevent needs the gevent package: No module named 'gevent'",
        "not_runnable: ModuleNotFoundError: No module named 'pkg_resources'",
    ]
    assert f"| green | {texts[0]} | **{texts[1]} \\*** |" in table.markdown(matrix)
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(table.console_table(matrix))
    assert "No module named 'gevent'" in console.export_text()
    long = cell("x", "5.4", "error") | {"reason": "x" * 500}
    assert len(table.cell_text(long)) == len("error: ") + table.REASON_CHARS
    assert table.cell_text(cell("y", "5.4", "error")) == "error: none"  # no reason known


def test_the_matrix_index_shows_an_error_cells_reason(tmp_path: Path) -> None:
    from celery_chaos.report.html import write_matrix_index

    matrix = sample()
    matrix["cells"].append(cell("green", "5.4", "error") | {"reason": "No module named <gevent>"})
    columns = [c["label"] for c in matrix["columns"]]
    page = write_matrix_index(tmp_path, columns, "5.4", table.rows(matrix)).read_text()
    assert '<span class="cell-reason muted">No module named &lt;gevent&gt;</span>' in page
