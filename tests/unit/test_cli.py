"""The command line's refusals and listing: a malformed scenario, a missing path, an empty
folder or an unknown ``--only`` name exits 2 with one line; ``list`` shows the shipped suite."""

from __future__ import annotations

from pathlib import Path

import yaml
from celery_chaos.cli import main
from click.testing import CliRunner

from tests.unit.inline_scenario import BASE

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_run_with_a_malformed_scenario_exits_2_with_one_line(tmp_path: Path) -> None:
    data = {**BASE, "faults": [{"kind": "explode", "when": {"at": 1}}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    result = invoke("run", str(path), "--report-dir", str(tmp_path / "reports"))

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"celery-chaos: error: {path}: faults[0].kind: ")
    assert not (tmp_path / "reports").exists()  # nothing ran


def test_run_with_a_nonexistent_path_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    result = invoke("run", str(missing))

    assert result.exit_code == 2
    assert result.stderr.strip() == f"celery-chaos: error: {missing}: no such file or folder"


def test_run_with_an_empty_folder_exits_2(tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path))

    assert result.exit_code == 2
    assert "no scenario files" in result.stderr


def test_run_only_an_unknown_name_exits_2() -> None:
    result = invoke("run", str(SCENARIOS), "--only", "no-such-scenario")

    assert result.exit_code == 2
    assert (
        result.stderr.strip() == "celery-chaos: error: --only: no scenario named 'no-such-scenario'"
    )


def test_list_the_shipped_scenarios() -> None:
    result = invoke("list", str(SCENARIOS))

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "kill_child" in result.stdout
