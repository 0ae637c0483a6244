"""pydantic 2 annotations as pydantic 1 types (:func:`translate`): unions and mappings validated
as pydantic 2 validates them, their errors located as it locates them (a union member's tag,
``[key]`` after a mapping's bad key), built from :mod:`.v1_types`.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic.error_wrappers import ErrorWrapper
from pydantic.error_wrappers import ValidationError as V1ValidationError
from pydantic.fields import ModelField

from celery_chaos.pydantic_compat.v1_schema import schema_of
from celery_chaos.pydantic_compat.v1_types import (
    PRIMITIVES,
    Anonymous,
    Checked,
    Primitive,
    StrictInt,
    V2Error,
    check_as,
    constrained,
)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "model_validate")


def tag(annotation: Any) -> str:
    """A union member's name in an error's location, as pydantic 2 writes it."""
    named = getattr(annotation, "tag", None)
    if named is not None:
        return named
    if isinstance(annotation, type) and issubclass(annotation, Primitive):
        return annotation.base.__name__
    if _is_model(annotation):
        return annotation.__name__
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list:
        return f"list[{tag(args[0])}]"
    if origin is Literal:
        return f"literal[{','.join(map(repr, args))}]"
    return "any" if annotation is Any else getattr(annotation, "__name__", str(annotation))


def _exact(annotation: Any, value: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, Primitive):
        return type(value) is annotation.base
    return _is_model(annotation) and isinstance(value, annotation)


def union_of(members: list[Any]) -> type[Checked]:
    """pydantic 2's smart union: an exact type match first, then each member in order."""
    caches: list[dict[Any, ModelField]] = [{} for _ in members]

    def validate(cls: type, value: Any, config: Any = None) -> Any:
        for member, cache in zip(members, caches, strict=True):
            if _exact(member, value):
                try:
                    return check_as(member, value, config, cache)
                except (ValueError, TypeError):
                    break
        errors = []
        for member, cache in zip(members, caches, strict=True):
            try:
                return check_as(member, value, config, cache)
            except (ValueError, TypeError) as error:
                errors.append(ErrorWrapper(error, loc=(tag(member),)))
        raise V1ValidationError(errors, Anonymous)

    def json_schema(cls: type) -> dict[str, Any]:
        return {"anyOf": [schema_of(member) for member in members]}

    attrs = {"validate": classmethod(validate), "json_schema": classmethod(json_schema)}
    return type("Union", (Checked,), {**attrs, "validates_none": True})


def mapping_of(key: Any, value: Any) -> type[Checked]:
    """``dict[key, value]``: a mapping only (pydantic 1 would take ``dict([])``), each bad key
    located at ``(key, '[key]')`` and each bad value at ``(key,)``."""
    key_cache: dict[Any, ModelField] = {}
    value_cache: dict[Any, ModelField] = {}

    def validate(cls: type, given: Any, config: Any = None) -> Any:
        if not isinstance(given, Mapping):
            raise V2Error("dict_type", "Input should be a valid dictionary")
        found, errors = {}, []
        for name, item in given.items():
            try:
                checked_name = check_as(key, name, config, key_cache)
            except (ValueError, TypeError) as error:
                errors.append(ErrorWrapper(error, loc=(name, "[key]")))
                continue
            try:
                found[checked_name] = check_as(value, item, config, value_cache)
            except (ValueError, TypeError) as error:
                errors.append(ErrorWrapper(error, loc=(name,)))
        if errors:
            raise V1ValidationError(errors, Anonymous)
        return found

    def json_schema(cls: type) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": schema_of(value)}

    attrs = {"validate": classmethod(validate), "json_schema": classmethod(json_schema)}
    attrs |= {"tag": f"dict[{tag(key)},{tag(value)}]", "none_error": ("dict_type", _DICT)}
    return type("Mapping", (Checked,), attrs)


_DICT = "Input should be a valid dictionary"


def _constrained(base: Any, constraints: dict[str, Any], after: list[Any]) -> Any:
    if not constraints and not after:
        return base
    made = constrained(base, constraints, after)
    primitive = isinstance(base, type) and issubclass(base, Primitive)
    made.tag = f"constrained-{tag(base)}" if primitive and constraints else tag(base)
    made.validates_none = getattr(base, "validates_none", False)
    return made


def translate(annotation: Any, constraints: dict[str, Any] | None = None, after: Any = ()) -> Any:
    """A resolved pydantic 2 annotation as a pydantic 1 one that validates the same way."""
    constraints, after = dict(constraints or {}), list(after)
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        for item in metadata:
            constraints = {**getattr(item, "constraints", {}), **constraints}
            if hasattr(item, "func"):
                after.insert(0, item.func)
        return translate(base, constraints, after)
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        inner = members[0] if len(members) == 1 else None
        if len(members) < len(get_args(annotation)):
            inner_type = inner if inner is not None else Union[tuple(members)]  # noqa: UP007
            return Union[translate(inner_type, constraints, after), None]  # noqa: UP007
        return _constrained(union_of([translate(m) for m in members]), constraints, after)
    strict = constraints.pop("strict", False)
    if annotation is int and strict:
        base = StrictInt
    elif annotation in PRIMITIVES:
        base = PRIMITIVES[annotation]
    elif origin is list:
        base = list[translate(get_args(annotation)[0])]  # type: ignore[misc]
    elif origin is dict:
        base = mapping_of(*(translate(arg) for arg in get_args(annotation)))
    else:
        base = annotation
    return _constrained(base, constraints, after)
