"""``celery-chaos schema``: the JSON Schema of a scenario file, generated from the models.

The schema is read off the pydantic model that loads scenario files (``core.scenario.Scenario``),
so it cannot drift from what ``celery-chaos run`` accepts; editors use it for completion and
checks (``# yaml-language-server: $schema=scenario.schema.json`` at the top of a file). It covers
the shape (keys, types, bounds); the checks that need more than one key or an import (a fault
that can never act, a Celery setting's name, the app's task names) stay in the loader.
"""

from __future__ import annotations

import json
from typing import Any

import click

from celery_chaos.core.scenario import Scenario

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def scenario_json_schema() -> dict[str, Any]:
    """The scenario file's JSON Schema (draft 2020-12), as the loader's models define it."""
    schema = Scenario.model_json_schema(mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "celery-chaos scenario",
        "description": "A celery-chaos scenario file (celery-chaos schema prints this).",
        **{key: value for key, value in schema.items() if key != "title"},
    }


@click.command(name="schema")
@click.option("--indent", type=click.IntRange(0, 8), default=2, show_default=True)
def schema(indent: int) -> None:
    """Print the JSON Schema of a scenario file (for editors and CI checks)."""
    click.echo(json.dumps(scenario_json_schema(), indent=indent or None, sort_keys=False))
