"""pydantic 1.10 types that validate as pydantic 2 does (lax mode) and fail with its wording.

pydantic 1 coerces where 2 refuses (``5`` into a ``str`` field, ``2.5`` into an ``int``) and
ignores ``Annotated`` constraints nested in unions or containers, so every annotation of a
compat model is translated (:func:`translate`) into these types: the same input is accepted
or refused under both majors, with pydantic 2's error type, message and context.
"""

from __future__ import annotations

import math
import re
import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.error_wrappers import ValidationError as V1ValidationError
from pydantic.fields import ModelField, Required

from celery_chaos.pydantic_compat.v1_schema import keywords, schema_of

NUMBER_BOUNDS = {
    "gt": ("greater_than", "greater than"),
    "ge": ("greater_than_equal", "greater than or equal to"),
    "lt": ("less_than", "less than"),
    "le": ("less_than_equal", "less than or equal to"),
}
CONSTRAINTS = ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern", "strict")
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


class V2Error(ValueError):
    """One error as pydantic 2 reports it: its type, message and context."""

    def __init__(self, kind: str, msg: str, ctx: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.kind, self.msg, self.ctx = kind, msg, ctx


class Anonymous:
    """The ``model`` v1's ValidationError wants for an error raised inside a type."""

    __name__ = "value"


def number(value: Any) -> Any:
    """A bound as pydantic 2's messages print it (``86400``, not ``86400.0``)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class V1Type:
    """What pydantic 1 asks of a custom type: its validators and its JSON Schema."""

    @classmethod
    def __get_validators__(cls) -> Any:
        yield cls.validate

    @classmethod
    def __modify_schema__(cls, schema: dict[str, Any]) -> None:
        schema.update(cls.json_schema())

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def validate(cls, value: Any, config: Any = None) -> Any:
        raise NotImplementedError


class Primitive(V1Type):
    """A scalar type validated the pydantic 2 way; subclasses set ``base`` and ``check``."""

    base: type = object
    schema_type = "string"
    none_error = ("string_type", "Input should be a valid string")

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return {"type": cls.schema_type}

    @classmethod
    def validate(cls, value: Any, config: Any = None) -> Any:
        return cls.check(value, config)

    @classmethod
    def check(cls, value: Any, config: Any) -> Any:
        raise NotImplementedError


class Str(Primitive):
    base = str

    @classmethod
    def check(cls, value: Any, config: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode()
        raise V2Error(*cls.none_error)


class Int(Primitive):
    base, schema_type = int, "integer"
    none_error = ("int_type", "Input should be a valid integer")

    @classmethod
    def check(cls, value: Any, config: Any) -> Any:
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise V2Error("finite_number", "Input should be a finite number")
            if not value.is_integer():
                raise V2Error(
                    "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part",
                )
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise V2Error(
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                ) from None
        raise V2Error(*cls.none_error)


class StrictInt(Int):
    @classmethod
    def check(cls, value: Any, config: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise V2Error(*cls.none_error)


class Float(Primitive):
    base, schema_type = float, "number"
    none_error = ("float_type", "Input should be a valid number")

    @classmethod
    def check(cls, value: Any, config: Any) -> Any:
        if isinstance(value, int | float):
            result = float(value)
        elif isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                raise V2Error(
                    "float_parsing",
                    "Input should be a valid number, unable to parse string as a number",
                ) from None
        else:
            raise V2Error(*cls.none_error)
        if not math.isfinite(result) and not getattr(config, "allow_inf_nan", True):
            raise V2Error("finite_number", "Input should be a finite number")
        return result


class Bool(Primitive):
    base, schema_type = bool, "boolean"
    none_error = ("bool_type", "Input should be a valid boolean")

    @classmethod
    def check(cls, value: Any, config: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int | float | str):
            raise V2Error(
                "bool_parsing", "Input should be a valid boolean, unable to interpret input"
            )
        raise V2Error(*cls.none_error)


_OPTIONAL = (Union, types.UnionType)
PRIMITIVES: dict[Any, type[Primitive]] = {str: Str, int: Int, float: Float, bool: Bool}


def literal_expected(choices: Any) -> str:
    """``'a', 'b' or 'c'``: how pydantic 2 lists a Literal's values."""
    shown = [repr(choice) for choice in choices]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def none_error(annotation: Any) -> tuple[str, str, dict[str, Any] | None]:
    """What pydantic 2 says when ``None`` is given for a field of type ``annotation``."""
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, V1Type):
        return (*annotation.none_error, None)
    if origin is Literal:
        expected = literal_expected(get_args(annotation))
        return "literal_error", f"Input should be {expected}", {"expected": expected}
    if origin is list:
        return "list_type", "Input should be a valid list", None
    if origin is dict:
        return "dict_type", "Input should be a valid dictionary", None
    if isinstance(annotation, type) and hasattr(annotation, "model_validate"):
        name = annotation.__name__
        return "model_type", f"Input should be a valid dictionary or instance of {name}", None
    return "none_forbidden", "Input should not be None", None


class Checked(V1Type):
    """Base of the generated types: one validator over a base type (see :func:`translate`)."""

    none_error = ("none_forbidden", "Input should not be None")
    _fields: dict[Any, ModelField]


def check_as(annotation: Any, value: Any, config: Any, cache: dict[Any, ModelField]) -> Any:
    """``value`` validated as ``annotation`` (a v1 field built on first use, when forward
    references have been resolved); its errors are raised with their locations."""
    if isinstance(annotation, type) and issubclass(annotation, V1Type):
        return annotation.validate(value, config)
    if value is None and annotation is not Any and get_origin(annotation) not in _OPTIONAL:
        raise V2Error(*none_error(annotation))  # pydantic 1 would say "none is not allowed"
    field = cache.get(config)
    if field is None:
        field = ModelField.infer(
            name="value",
            value=Required,
            annotation=annotation,
            class_validators=None,
            config=config,
        )
        cache[config] = field
    result, errors = field.validate(value, {}, loc=())
    if errors:
        raise V1ValidationError(errors if isinstance(errors, list) else [errors], Anonymous)
    return result


def _lengths(value: Any, constraints: dict[str, Any]) -> None:
    size = len(value) if isinstance(value, str | list | dict) else None
    if size is None:
        return
    for key, word, too in (("min_length", "least", "short"), ("max_length", "most", "long")):
        bound = constraints.get(key)
        if bound is None or (size >= bound if too == "short" else size <= bound):
            continue
        if isinstance(value, str):
            unit = "character" if bound == 1 else "characters"
            msg = f"String should have at {word} {bound} {unit}"
            raise V2Error(f"string_too_{too}", msg, {key: bound})
        name = "List" if isinstance(value, list) else "Dictionary"
        unit = "item" if bound == 1 else "items"
        msg = f"{name} should have at {word} {bound} {unit} after validation, not {size}"
        raise V2Error(f"too_{too}", msg, {"field_type": name, key: bound, "actual_length": size})


def _bounds(value: Any, constraints: dict[str, Any]) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    tests = {"gt": value.__gt__, "ge": value.__ge__, "lt": value.__lt__, "le": value.__le__}
    for key, (kind, words) in NUMBER_BOUNDS.items():
        bound = constraints.get(key)
        if bound is not None and tests[key](bound) is not True:
            raise V2Error(kind, f"Input should be {words} {number(bound)}", {key: bound})


def constrained(base: Any, constraints: dict[str, Any], after: list[Any]) -> type[Checked]:
    """``base`` then pydantic 2's bound, length and pattern checks, then AfterValidators."""
    cache: dict[Any, ModelField] = {}
    pattern = constraints.get("pattern")

    def validate(cls: type, value: Any, config: Any = None) -> Any:
        value = check_as(base, value, config, cache)
        _bounds(value, constraints)
        _lengths(value, constraints)
        if pattern is not None and isinstance(value, str) and not re.search(pattern, value):
            msg = f"String should match pattern '{pattern}'"
            raise V2Error("string_pattern_mismatch", msg, {"pattern": pattern})
        for function in after:
            value = function(value)
        return value

    kind = base if isinstance(base, type) and issubclass(base, V1Type) else None

    def json_schema(cls: type) -> dict[str, Any]:
        return keywords(schema_of(base), constraints)

    attrs = {"validate": classmethod(validate), "json_schema": classmethod(json_schema)}
    attrs["none_error"] = kind.none_error if kind else None
    if attrs["none_error"] is None:
        attrs["none_error"] = none_error(base)[:2]
    return type("Constrained", (Checked,), attrs)
