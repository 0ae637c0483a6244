"""The run's side of invariants, without a server: placeholders, the SQLite and path readers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from celery_chaos.run.app_state import dispatched, fill, sql_list
from celery_chaos.services.readers import ReadError, count_paths, read_sql


def test_task_ids_become_a_quoted_sql_list_and_none_matches_nothing():
    assert sql_list(["a", "b'c"]) == "'a','b''c'"
    assert sql_list([]) == "NULL"  # IN (NULL): valid SQL, no row
    query = "SELECT count(*) FROM t WHERE run = '{run_id}' AND id IN ({task_ids})"
    assert fill(query, "r1", ["x"]) == "SELECT count(*) FROM t WHERE run = 'r1' AND id IN ('x')"


def test_dispatched_ids_come_from_dispatch_events_in_order_once():
    history = [
        {"type": "dispatch", "task_id": "b"},
        {"type": "attempt_start", "task_id": "z"},
        {"type": "dispatch", "task_id": "a"},
        {"type": "dispatch", "task_id": "b"},
    ]
    assert dispatched(history) == ["b", "a"]


def test_sqlite_reads_one_number_and_refuses_anything_else(tmp_path: Path):
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as connection:
        connection.executescript("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);")
    assert read_sql(f"sqlite:///{db}", "SELECT count(*) FROM t") == 2
    with pytest.raises(ReadError, match="expected one number"):
        read_sql(f"sqlite:///{db}", "SELECT x FROM t")
    with pytest.raises(ReadError, match="does not exist"):
        read_sql(f"sqlite:///{tmp_path / 'missing.db'}", "SELECT 1")


def test_paths_are_counted_under_the_folder_only(tmp_path: Path):
    (tmp_path / "out" / "deep").mkdir(parents=True)
    for name in ("out/a.zip", "out/b.zip", "out/deep/c.zip", "out/d.txt"):
        (tmp_path / name).write_text("x")
    assert count_paths(tmp_path, "out/*.zip") == 2
    assert count_paths(tmp_path, "out/**/*.zip") == 3
    with pytest.raises(ReadError):
        count_paths(tmp_path, "../*")
