"""``celery-chaos schema``: the scenario file's JSON Schema, generated from the loader's models.
Every shipped scenario validates against it, and it refuses what the loader refuses in shape
(an unknown key, a fault kind that does not exist, a bound exceeded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery_chaos.cli import main
from celery_chaos.cli_schema import SCHEMA_DIALECT, scenario_json_schema
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.faults.registry import FAULTS
from click.testing import CliRunner

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with the dev extra")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))
MINIMAL: dict[str, Any] = {
    "name": "minimal",
    "description": "the smallest scenario the loader accepts",
    "workload": [{"task": "sample_tasks.tasks.work"}],
}


def _errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(scenario_json_schema())
    return [error.message for error in validator.iter_errors(document)]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = scenario_json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_command_prints_the_generated_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == scenario_json_schema()


def test_shipped_scenarios_are_found() -> None:
    folders = {path.parent.name for path in SHIPPED}
    assert len(SHIPPED) >= 40 and {"scenarios", "rabbitmq", "nightly", "docker-only"} <= folders


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_every_shipped_scenario_validates(path: Path) -> None:
    assert _errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_the_loader_accepts_the_minimal_document_the_schema_accepts() -> None:
    assert _errors(MINIMAL) == []
    assert parse_scenario(MINIMAL, "minimal.yaml").name == "minimal"


@pytest.mark.parametrize(
    "change",
    [
        {"timout": 30},  # a typo of timeout: unknown keys are errors
        {"workers": {"count": 1, "pooll": "solo"}},
        {"faults": [{"kind": "kill_everything", "when": {"at": 1}}]},
        {"timeout": 10**9},  # above the one-day bound (README: Limits)
        {"workload": []},
    ],
)
def test_the_schema_and_the_loader_both_refuse(change: dict[str, Any]) -> None:
    document = MINIMAL | change
    assert _errors(document) != []
    with pytest.raises(ScenarioError):
        parse_scenario(document, "bad.yaml")


def test_the_schema_names_every_fault_kind_of_the_registry() -> None:
    text = json.dumps(scenario_json_schema())
    assert all(f'"{kind}"' in text for kind in FAULTS)
