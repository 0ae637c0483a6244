"""Scenario files: every shipped file loads; a malformed one names the file and the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_chaos.core.checker import VERDICTS
from celery_chaos.core.scenario import Scenario, discover, load_file, load_suite, parse_scenario
from celery_chaos.core.scenario_base import Range, ScenarioError
from celery_chaos.core.workflows import leaves
from celery_chaos.faults.params import parse_size
from celery_chaos.run.preflight import preflight

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SCENARIO_FILES = discover([SCENARIOS])
ALL_SHIPPED = (
    SCENARIO_FILES + discover([SCENARIOS / "docker-only"]) + discover([SCENARIOS / "nightly"])
)

VALID: dict[str, Any] = {
    "name": "valid",
    "description": "a minimal valid scenario",
    "celery": {"task_acks_late": True},
    "workers": {"count": 1, "concurrency": 2},
    "workload": [
        {"task": "sample_tasks.tasks.work", "count": 2, "kwargs": {"seconds": 1}},
        {"task": "sample_tasks.tasks.send_email", "kwargs": {"to": "u-{n}@example.com"}},
    ],
    "faults": [{"kind": "kill_child", "when": {"task": 0, "checkpoint": "step-3"}}],
    "expect": {"ok": 2, "lost": {"max": 1}},
}


def scenario_data(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    data.update(changes)
    return data


def write(folder: Path, name: str, data: Any) -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def load_error(tmp_path: Path, data: Any, name: str = "broken.yaml") -> tuple[Path, str]:
    path = write(tmp_path, name, data)
    with pytest.raises(ScenarioError) as raised:
        load_file(path)
    return path, str(raised.value)


# --- the shipped suite -------------------------------------------------------------------


def test_the_scenarios_folder_is_not_empty() -> None:
    assert len(SCENARIO_FILES) >= 1


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.name for p in SCENARIO_FILES])
def test_shipped_scenario_loads(path: Path) -> None:
    scenario = load_file(path)

    assert isinstance(scenario, Scenario)
    assert set(scenario.expect) <= set(VERDICTS)
    for fault in scenario.faults:
        task = fault.target_task()
        assert task is None or task < scenario.task_count


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.name for p in SCENARIO_FILES])
def test_shipped_scenario_only_dispatches_tasks_its_app_defines(path: Path) -> None:
    scenario = load_file(path)
    if scenario.workers.app != "celery_chaos.sample_tasks.app":
        pytest.skip(f"uses app {scenario.workers.app}")
    from celery_chaos.sample_tasks.app import app

    app.loader.import_default_modules()
    tasks = {leaf.task for item in scenario.workload for leaf in leaves(item)}  # workflows too
    unknown = tasks - set(app.tasks)
    assert not unknown, f"{path.name}: tasks not defined by sample_tasks: {sorted(unknown)}"


@pytest.mark.parametrize("path", ALL_SHIPPED, ids=[p.name for p in ALL_SHIPPED])
def test_shipped_scenario_passes_the_preflight(path: Path) -> None:
    """Known Celery settings, an importable app that registers every workload task."""
    preflight(load_file(path), str(path))


def test_the_shipped_suite_loads_as_one_with_unique_names() -> None:
    suite = load_suite([SCENARIOS])

    assert len(suite) == len(SCENARIO_FILES)
    assert len({s.name for s in suite}) == len(suite)


def test_valid_example_parses_with_defaults_and_ranges() -> None:
    scenario = parse_scenario(scenario_data(), "inline")

    assert scenario.task_count == 3
    assert scenario.workers.pool == "prefork"
    assert scenario.broker.persistence == "none"
    assert scenario.expect["ok"] == 2
    assert isinstance(scenario.expect["lost"], Range) and scenario.expect["lost"].max == 1
    assert scenario.faults[0].target_task() == 0


# --- malformed input: the message names the file and the field -------------------------


def test_unknown_fault_kind_names_faults_0_kind(tmp_path: Path) -> None:
    faults = [{"kind": "explode", "when": {"at": 1}}]
    path, message = load_error(tmp_path, scenario_data(faults=faults))

    assert message.startswith(f"{path}: faults[0].kind: ")
    assert "kill_child" in message  # says what is allowed


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    path, message = load_error(tmp_path, scenario_data(wrokers={"count": 2}))

    assert message.startswith(f"{path}: wrokers: ")
    assert "not permitted" in message


def test_unknown_nested_key_is_rejected_with_its_path(tmp_path: Path) -> None:
    data = scenario_data()
    data["workload"][1]["options"] = {"countdonw": 3}
    path, message = load_error(tmp_path, data)

    assert message.startswith(f"{path}: workload[1].options.countdonw: ")


def test_unknown_expected_verdict_names_expect_and_the_verdict(tmp_path: Path) -> None:
    path, message = load_error(tmp_path, scenario_data(expect={"lots": 0}))

    assert message.startswith(f"{path}: expect: ")
    assert "'lots'" in message
    assert "duplicate_executions" in message  # lists the valid names


def test_checkpoint_trigger_without_task(tmp_path: Path) -> None:
    faults = [{"kind": "kill_child", "when": {"checkpoint": "step-3"}}]
    path, message = load_error(tmp_path, scenario_data(faults=faults))

    assert message.startswith(f"{path}: faults[0].when: ")
    assert "needs task" in message


@pytest.mark.parametrize(
    "when",
    [
        {"at": 1.0, "random": {"min": 0, "max": 2}},
        {"task": 0, "checkpoint": "step-1", "at": 2.0},
        {"delay": 1.0},
    ],
    ids=["at+random", "checkpoint+at", "none"],
)
def test_trigger_needs_exactly_one_kind(tmp_path: Path, when: dict[str, Any]) -> None:
    path, message = load_error(tmp_path, scenario_data(faults=[{"kind": "pause", "when": when}]))

    assert message.startswith(f"{path}: faults[0].when: ")
    assert "exactly one of" in message


def test_random_window_must_be_ordered(tmp_path: Path) -> None:
    faults = [{"kind": "pause", "when": {"random": {"min": 3, "max": 1}}}]
    path, message = load_error(tmp_path, scenario_data(faults=faults))

    assert message.startswith(f"{path}: faults[0].when.random: ")


@pytest.mark.parametrize("after", [1, 2], ids=["itself", "forward"])
def test_after_fault_must_point_backwards(tmp_path: Path, after: int) -> None:
    faults = [
        {"kind": "kill_worker", "when": {"at": 1}},
        {"kind": "start_worker", "when": {"after_fault": after, "delay": 1}},
        {"kind": "kill_worker", "when": {"at": 3}},
    ]
    path, message = load_error(tmp_path, scenario_data(faults=faults))

    assert message.startswith(f"{path}: ")
    assert "faults[1].when.after_fault" in message


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "kill_child", "when": {"task": 3, "checkpoint": "step-1"}},
        {"kind": "kill_child", "when": {"at": 1}, "target": {"task": 7}},
    ],
    ids=["trigger-task", "target-task"],
)
def test_fault_aiming_beyond_the_workload(tmp_path: Path, fault: dict[str, Any]) -> None:
    path, message = load_error(tmp_path, scenario_data(faults=[fault]))

    assert message.startswith(f"{path}: ")
    assert "faults[0]" in message
    assert "the workload has 3" in message


def test_task_index_at_the_end_of_the_workload_is_fine() -> None:
    faults = [{"kind": "kill_child", "when": {"task": 2, "checkpoint": "render-1"}}]
    assert parse_scenario(scenario_data(faults=faults), "inline").faults[0].target_task() == 2


def test_invalid_memory_size_names_the_field(tmp_path: Path) -> None:
    path, message = load_error(tmp_path, scenario_data(workers={"memory_limit": "lots"}))

    assert message.startswith(f"{path}: workers.memory_limit: ")
    assert "not a memory size" in message


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    text = "name: broken\ndescription: x\nworkload: [\n  {task: a}\n  - nope\n"
    path, message = load_error(tmp_path, text)

    assert message.startswith(f"{path}: line ")
    line = int(message.split("line ")[1].split(":")[0])
    assert 3 <= line <= 5
    assert "not valid YAML" in message


@pytest.mark.parametrize("text", ["- just\n- a list\n", "", "a string\n"])
def test_a_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path, message = load_error(tmp_path, text)

    assert message == f"{path}: (top level): expected a mapping of scenario keys"


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_file(tmp_path)  # a folder, not a file


# --- suites ------------------------------------------------------------------------------


def test_duplicate_scenario_names_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", scenario_data(name="same"))
    second = write(tmp_path, "b.yml", scenario_data(name="same"))

    with pytest.raises(ScenarioError) as raised:
        load_suite([tmp_path])
    message = str(raised.value)
    assert message.startswith(f"{second}: name: ")
    assert "'same'" in message and str(first) in message


def test_only_filters_by_name_and_rejects_unknown_names(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", scenario_data(name="alpha"))
    write(tmp_path, "b.yaml", scenario_data(name="beta"))

    assert [s.name for s in load_suite([tmp_path])] == ["alpha", "beta"]
    assert [s.name for s in load_suite([tmp_path], only=["beta"])] == ["beta"]
    with pytest.raises(ScenarioError) as raised:
        load_suite([tmp_path], only=["beta", "gamma"])
    assert str(raised.value) == "--only: no scenario named 'gamma'"


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ScenarioError) as raised:
        load_suite([missing])
    assert str(raised.value) == f"{missing}: no such file or folder"


def test_discover_reads_a_folders_own_yaml_not_its_subfolders(tmp_path: Path) -> None:
    """`scenarios/` is the default suite; `scenarios/docker-only/` must be asked for by name."""
    top = write(tmp_path, "top.yml", scenario_data(name="top"))
    (tmp_path / "nested").mkdir()
    nested = write(tmp_path / "nested", "deep.yaml", scenario_data(name="deep"))
    write(tmp_path, "notes.txt", "not a scenario")

    assert discover([tmp_path]) == [top]
    assert discover([tmp_path / "nested"]) == [nested]


# --- sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256M", 256 * 2**20),
        ("1G", 2**30),
        ("1g", 2**30),
        ("512Mi", 512 * 2**20),
        ("1GiB", 2**30),
        ("48MB", 48 * 2**20),
        ("64k", 64 * 1024),
        ("1.5G", int(1.5 * 2**30)),
        ("100", 100),
        ("100b", 100),
        (" 2 M ", 2 * 2**20),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "-1M", "1T", "M", "1.2.3G"])
def test_parse_size_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        parse_size(text)
