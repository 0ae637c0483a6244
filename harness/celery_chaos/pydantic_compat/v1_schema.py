"""``model_json_schema`` under pydantic 1.10: the translated types (:mod:`.v1_types`) described
as their base types with their bounds, so ``celery-chaos schema`` still lists every key, type,
bound and nested model (pydantic 1 writes ``definitions`` where 2 writes ``$defs``).
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseConfig
from pydantic import schema as v1_schema
from pydantic.fields import ModelField, Required

# The schema being written: the nested models' definitions and the models already described
# (a model that contains itself, like a workflow's node, is referenced, not expanded again).
_BUILD = threading.local()
_KEYWORDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}
_LENGTHS = {"string": "Length", "array": "Items", "object": "Properties"}


class _Names(dict):
    """Every model under its class name (the schema's definitions key)."""

    def __missing__(self, model: Any) -> str:
        return model.__name__


def keywords(schema: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a translated type's bounds as JSON Schema keywords."""
    found = dict(schema)
    found.update({_KEYWORDS[k]: v for k, v in constraints.items() if k in _KEYWORDS})
    unit = _LENGTHS.get(found.get("type", ""), "")
    for key, word in (("min_length", "min"), ("max_length", "max")):
        if unit and constraints.get(key) is not None:
            found[f"{word}{unit}"] = constraints[key]
    if constraints.get("pattern"):
        found["pattern"] = constraints["pattern"]
    return found


def schema_of(annotation: Any) -> dict[str, Any]:
    """The schema of ``annotation`` (a translated type or any pydantic 1 one) while a model's
    schema is being written; the models it reaches join that schema's definitions."""
    describe = getattr(annotation, "json_schema", None)
    if describe is not None:
        return describe()
    field = ModelField.infer(
        name="value",
        value=Required,
        annotation=annotation,
        class_validators=None,
        config=BaseConfig,
    )
    found, definitions, _ = v1_schema.field_schema(
        field,
        model_name_map=_Names(),
        ref_template="#/definitions/{model}",
        known_models=getattr(_BUILD, "known", set()),
    )
    getattr(_BUILD, "definitions", {}).update(definitions)
    found.pop("title", None)
    return found


def model_json_schema(model: Any) -> dict[str, Any]:
    """``model``'s schema with every nested model's definition, however deeply it is wrapped."""
    _BUILD.definitions, _BUILD.known = {}, {model}
    try:
        found = v1_schema.model_schema(model, ref_template="#/definitions/{model}")
        definitions = {**_BUILD.definitions, **found.get("definitions", {})}
    finally:
        del _BUILD.definitions, _BUILD.known
    if definitions:
        found["definitions"] = definitions
    return found
