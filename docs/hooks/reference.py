"""MkDocs hook: the reference facts the code owns are generated at build time, never copied.

A page asks for one with an HTML comment on a line of its own:

- ``<!-- fault-kinds -->``: the fault kinds table, from the registry ``faults.registry.FAULTS``;
- ``<!-- fault-kinds-how -->``: how each placement carries each kind out (``FaultKind.how``);
- ``<!-- scenario-schema -->``: every key of a scenario file, from the JSON Schema that
  ``celery-chaos schema`` prints (itself read off the pydantic models);
- ``<!-- anomalies -->``: the anomaly verdicts a strict scenario must name
  (``core.expectations.ANOMALIES``);
- ``<!-- docstring: MODULE -->``: a module's docstring (the checker's semantics live there);
- ``<!-- include: README.md#Heading -->``: one ``##`` section of the project's README (the
  concept table lives there, where every contributor reads it first).

The built site also carries ``scenario.schema.json`` for editors.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

MARKER = re.compile(
    r"^<!-- (fault-kinds|fault-kinds-how|scenario-schema|anomalies"
    r"|docstring: [\w.]+|include: [\w.]+#[^>]+) -->$",
    re.M,
)


def on_page_markdown(markdown: str, page: Any, config: Any, **_: Any) -> str:
    """Replace each marker by what the code (or README) says today."""
    root = Path(config["config_file_path"]).parent
    depth = page.file.src_uri.count("/")
    return MARKER.sub(lambda match: _render(match.group(1), root, depth), markdown)


def on_post_build(config: Any, **_: Any) -> None:
    """Publish the schema beside the pages, so ``$schema=<site>/scenario.schema.json`` works."""
    from celery_chaos.cli_schema import scenario_json_schema

    target = Path(config["site_dir"]) / "scenario.schema.json"
    target.write_text(json.dumps(scenario_json_schema(), indent=2) + "\n")


def _render(what: str, root: Path, depth: int) -> str:
    if what.startswith("include: "):
        path, heading = what.split(": ", 1)[1].split("#", 1)
        return readme_section((root / path).read_text(encoding="utf-8"), heading, depth)
    if what == "fault-kinds":
        return fault_kinds_table()
    if what == "fault-kinds-how":
        return fault_kinds_how_table()
    if what == "scenario-schema":
        return scenario_schema_tables()
    if what == "anomalies":
        from celery_chaos.core.expectations import ANOMALIES

        return ", ".join(f"`{name}`" for name in ANOMALIES) + "."
    module = importlib.import_module(what.split(": ", 1)[1])
    return rst_to_markdown(inspect.getdoc(module) or "")


def readme_section(text: str, heading: str, depth: int) -> str:
    """The body of ``## heading``, its links into ``docs/`` made relative to the page."""
    body = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0].strip()
    up = "../" * depth
    return body.replace("](docs/", f"]({up}")


def rst_to_markdown(text: str) -> str:
    """The docstrings' reStructuredText literals and roles, as Markdown code spans."""
    text = re.sub(r":(?:mod|class|func|meth|attr):`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def fault_kinds_table() -> str:
    """One row per registered fault kind, in registry order."""
    from celery_chaos.faults.registry import FAULTS

    rows = [
        "| kind | what it does | options | needs a running task | backends | `repro --fault` |",
        "|---|---|---|---|---|---|",
    ]
    for kind in FAULTS.values():
        options = ", ".join(f"`{name}`" for name in kind.params.model_fields) or "none"
        backends = ", ".join(sorted(kind.placements))
        needs = "yes" if kind.needs_task else "no"
        offered = "yes" if kind.repro is not None else "no"
        rows.append(
            f"| `{kind.name}` | {kind.summary} | {options} | {needs} | {backends} | {offered} |"
        )
    return "\n".join(rows)


def fault_kinds_how_table() -> str:
    """How each placement carries each kind out, from the kinds' own ``how``."""
    from celery_chaos.faults.base import PLACEMENTS
    from celery_chaos.faults.registry import FAULTS

    placements = sorted(PLACEMENTS, key=lambda name: name != "local")
    rows = ["| kind | " + " | ".join(f"{name} backend" for name in placements) + " |"]
    rows.append("|---" * (len(placements) + 1) + "|")
    for kind in FAULTS.values():
        cells = [kind.how.get(name, "not supported") for name in placements]
        rows.append(f"| `{kind.name}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def scenario_schema_tables() -> str:
    """The scenario's keys, then one table per nested object, from the generated schema."""
    from celery_chaos.cli_schema import scenario_json_schema

    schema = scenario_json_schema()
    defs = schema.get("$defs", {})
    parts = ["## Scenario (top level)", "", _object_table(schema)]
    for name in sorted(defs):
        if defs[name].get("type") == "object" and defs[name].get("properties"):
            parts += ["", f"## {name}", "", _object_table(defs[name])]
    return "\n".join(parts)


def _object_table(node: dict[str, Any]) -> str:
    required = set(node.get("required", ()))
    rows = ["| key | type | default | constraints |", "|---|---|---|---|"]
    for key, prop in node.get("properties", {}).items():
        default = "required" if key in required else _default(prop)
        rows.append(f"| `{key}` | {_type(prop)} | {default} | {_constraints(prop)} |")
    return "\n".join(rows)


def _default(prop: dict[str, Any]) -> str:
    if "default" not in prop:
        return "-"
    return f"`{json.dumps(prop['default'])}`"


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for union in ("anyOf", "oneOf"):
        if union in prop:
            return " or ".join(_type(option) for option in prop[union])
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"map of {_type(prop['additionalProperties'])}"
    return str(kind)


_BOUNDS = {
    "minimum": ">=",
    "exclusiveMinimum": ">",
    "maximum": "<=",
    "exclusiveMaximum": "<",
    "minLength": "length >=",
    "maxLength": "length <=",
    "minItems": "items >=",
    "maxItems": "items <=",
    "pattern": "matches",
}


def _constraints(prop: dict[str, Any]) -> str:
    found = [f"{label} `{prop[key]}`" for key, label in _BOUNDS.items() if key in prop]
    for union in ("anyOf", "oneOf"):
        for option in prop.get(union, ()):
            found += [f"{label} `{option[key]}`" for key, label in _BOUNDS.items() if key in option]
    return ", ".join(found).replace("|", "\\|")
