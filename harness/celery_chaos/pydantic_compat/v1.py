"""The pydantic 2 surface the harness uses, built on pydantic 1.10 (an app pinned to it keeps it).

A model class is translated when it is created (:class:`_Metaclass`): ``model_config`` becomes a
``Config``, ``Field`` constraints and annotations become :mod:`.v1_types` types (pydantic 2's
lax validation and wording), ``field_validator`` becomes a v1 validator, and ``model_validator``
a root validator; an ``after`` one sees a model instance, so the harness's validator bodies run
unchanged. :class:`ValidationError` reports ``errors()`` as pydantic 2 does (type, loc, msg,
input, ctx), so the one-line messages of :func:`celery_chaos.core.scenario_base.first_error`
read the same under both majors.
"""

from __future__ import annotations

import inspect
import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import errors as v1_errors
from pydantic.error_wrappers import ErrorWrapper
from pydantic.error_wrappers import ValidationError as V1ValidationError
from pydantic.fields import Undefined
from pydantic.main import ModelMetaclass

from celery_chaos.pydantic_compat.v1_schema import model_json_schema
from celery_chaos.pydantic_compat.v1_translate import translate
from celery_chaos.pydantic_compat.v1_types import (
    CONSTRAINTS,
    V2Error,
    literal_expected,
    none_error,
)

# The fields given to each model being validated (innermost last): ``model_fields_set`` for
# its after-validators, which pydantic 1's root validators are not told.
_GIVEN = threading.local()
# pydantic 1 error classes and their pydantic 2 type and message.
_V1_ERRORS: dict[type, tuple[str, str]] = {
    v1_errors.MissingError: ("missing", "Field required"),
    v1_errors.ExtraError: ("extra_forbidden", "Extra inputs are not permitted"),
    v1_errors.ListError: ("list_type", "Input should be a valid list"),
    v1_errors.DictError: ("dict_type", "Input should be a valid dictionary"),
    v1_errors.NoneIsNotAllowedError: ("none_forbidden", "Input should not be None"),
}


class AfterValidator:
    """``Annotated[T, AfterValidator(f)]``: ``f`` runs on the validated value."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func


class _FieldSpec:
    """``Field(...)``: the constraints go into the field's type, the rest to pydantic 1."""

    def __init__(self, default: Any, **kwargs: Any) -> None:
        self.constraints = {k: kwargs.pop(k) for k in CONSTRAINTS if kwargs.get(k) is not None}
        self.default, self.kwargs = default, kwargs

    def v1_field(self) -> Any:
        return pydantic.Field(self.default, **self.kwargs)


def Field(default: Any = Undefined, **kwargs: Any) -> Any:  # noqa: N802 - pydantic's name
    return _FieldSpec(default, **kwargs)


def ConfigDict(**settings: Any) -> dict[str, Any]:  # noqa: N802 - pydantic's name
    return settings


@dataclass
class ValidationInfo:
    """What a field validator with an ``info`` argument is told."""

    data: dict[str, Any]
    field_name: str


@dataclass
class _Decorated:
    func: Any
    mode: str
    fields: tuple[str, ...] = ()


def field_validator(*fields: str, mode: str = "after") -> Callable[[Any], _Decorated]:
    return lambda func: _Decorated(func, mode, fields)


def model_validator(*, mode: str) -> Callable[[Any], _Decorated]:
    return lambda func: _Decorated(func, mode)


@dataclass
class FieldView:
    """``Model.model_fields[name]``: its default and its annotation as written."""

    default: Any
    annotation: Any
    description: str | None = None


class ValidationError(V1ValidationError):
    """pydantic 1's error, reported as pydantic 2 reports it."""

    def __init__(self, raw_errors: Any, model: Any, data: Any = None) -> None:
        super().__init__(raw_errors, model)
        self.input = data

    @property
    def title(self) -> str:
        return getattr(self.model, "__name__", "value")

    def errors(self, **_: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        return [_as_v2(loc, error, self.input) for loc, error in _flatten(self.raw_errors, ())]

    def error_count(self) -> int:
        return len(self.errors())

    def __str__(self) -> str:
        lines = [f"{self.error_count()} validation error(s) for {self.title}"]
        for error in self.errors():
            lines += [".".join(map(str, error["loc"])) or "(top level)", f"  {error['msg']}"]
        return "\n".join(lines)


def _flatten(raw: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Exception]]:
    for item in raw if isinstance(raw, list | tuple) else [raw]:
        if isinstance(item, list | tuple):
            yield from _flatten(item, loc)
            continue
        here = loc + tuple(p for p in item.loc_tuple() if p not in ("__root__", "__key__"))
        if isinstance(item.exc, V1ValidationError):
            yield from _flatten(item.exc.raw_errors, here)
        else:
            yield here, item.exc


def _input_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        found = isinstance(data, dict) and part in data
        if not found and not (isinstance(data, list) and isinstance(part, int)):
            return data
        if not found and part >= len(data):
            return data
        data = data[part]
    return data


def _as_v2(loc: tuple[Any, ...], error: Exception, data: Any) -> dict[str, Any]:
    ctx = None
    if isinstance(error, V2Error):
        kind, msg, ctx = error.kind, error.msg, error.ctx
    elif type(error) in _V1_ERRORS:
        kind, msg = _V1_ERRORS[type(error)]
    elif isinstance(error, v1_errors.WrongConstantError):
        expected = literal_expected(error.permitted)  # type: ignore[attr-defined]
        kind, msg, ctx = "literal_error", f"Input should be {expected}", {"expected": expected}
    elif isinstance(error, AssertionError):
        kind, msg = "assertion_error", f"Assertion failed, {error}"
    elif isinstance(error, v1_errors.PydanticErrorMixin):
        kind, msg = error.code, str(error)  # type: ignore[attr-defined]
    else:
        kind, msg = "value_error", f"Value error, {error}"
    found = {"type": kind, "loc": loc, "msg": msg, "input": _input_at(data, loc)}
    return found | ({"ctx": ctx} if ctx is not None else {})


def _reject_none(cls: type, value: Any, field: Any) -> Any:
    """pydantic 1 refuses ``None`` before a field's type is consulted; say it as 2 does."""
    if value is None and not field.allow_none:
        if getattr(field.outer_type_, "validates_none", False):  # a union: each member says
            field.outer_type_.validate(None, field.model_config)
        raise V2Error(*none_error(field.outer_type_))
    return value


_reject_none.__name__ = "_compat_reject_none"


def _module_names(namespace: dict[str, Any]) -> dict[str, Any]:
    module = sys.modules.get(namespace.get("__module__", ""))
    return dict(vars(module)) if module else {}


def _resolve(annotation: Any, names: dict[str, Any]) -> Any:
    return eval(annotation, names) if isinstance(annotation, str) else annotation  # noqa: S307


def _config(settings: dict[str, Any]) -> type:
    attrs = dict(settings)
    if "extra" in attrs:
        attrs["extra"] = pydantic.Extra(attrs["extra"])
    return type("Config", (), attrs)


def _field_validator(decorated: _Decorated) -> Any:
    func = getattr(decorated.func, "__func__", decorated.func)
    takes_info = len(inspect.signature(func).parameters) >= 3

    def check(cls: type, value: Any, values: dict[str, Any], field: Any) -> Any:
        if takes_info:
            return func(cls, value, ValidationInfo(values, field.name))
        return func(cls, value)

    check.__name__ = func.__name__
    pre = decorated.mode == "before"
    return pydantic.validator(*decorated.fields, pre=pre, allow_reuse=True)(check)


def _before(func: Any) -> Callable[[type, Any], Any]:
    function = getattr(func, "__func__", func)
    return lambda cls, values: function(cls, values)


def _after(func: Any) -> Callable[[type, dict[str, Any]], dict[str, Any]]:
    def check(cls: type, values: dict[str, Any]) -> dict[str, Any]:
        given = _GIVEN.stack[-1] if getattr(_GIVEN, "stack", None) else None
        model = cls.construct(_fields_set=given, **values)  # type: ignore[attr-defined]
        return dict(func(model).__dict__)

    return check


def _record_given(cls: type, values: Any) -> Any:
    """The last before-validator: which fields the input sets (after the others' changes)."""
    if getattr(_GIVEN, "stack", None) and isinstance(values, dict):
        _GIVEN.stack[-1] = set(values) & set(cls.__fields__)  # type: ignore[attr-defined]
    return values


class _Metaclass(ModelMetaclass):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kw: Any):
        names = _module_names(namespace)
        if "model_config" in namespace:
            namespace["Config"] = _config(namespace.pop("model_config"))
        validators: dict[str, dict[str, Any]] = {"before": {}, "after": {}}
        for key, value in list(namespace.items()):
            if isinstance(value, _Decorated) and value.fields:
                namespace[key] = _field_validator(value)
            elif isinstance(value, _Decorated):
                validators[value.mode][key] = value.func
                namespace[key] = value.func
        deferred: dict[str, tuple[Any, dict[str, Any]]] = {}
        originals: dict[str, Any] = {}
        annotations = namespace.get("__annotations__", {})
        for field, annotation in list(annotations.items()):
            spec = namespace.get(field)
            constraints = spec.constraints if isinstance(spec, _FieldSpec) else {}
            if isinstance(spec, _FieldSpec):
                namespace[field] = spec.v1_field()
            try:
                originals[field] = _resolve(annotation, names)
            except NameError:
                deferred[field] = (annotation, constraints)
                continue
            annotations[field] = translate(originals[field], constraints)
        cls = super().__new__(mcs, name, bases, namespace, **kw)
        _wire(cls, validators, deferred, originals)
        return cls


def _wire(cls: Any, own: dict[str, dict[str, Any]], deferred: dict, originals: dict) -> None:
    """Root validators (parents' first, a subclass's method of the same name replacing its
    parent's, as in pydantic 2), the fields still to resolve, and ``model_fields``."""
    merged: dict[str, dict[str, Any]] = {"before": {}, "after": {}}
    pending: dict[str, Any] = {}
    for base in reversed(cls.__mro__[1:]):
        for mode in merged:
            merged[mode].update(getattr(base, "__compat_validators__", {}).get(mode, {}))
        pending.update(getattr(base, "__compat_deferred__", {}))
    for mode in merged:
        merged[mode].update(own[mode])
    cls.__compat_validators__ = merged
    cls.__compat_deferred__ = {**pending, **deferred}
    cls.__pre_root_validators__ = [*map(_before, merged["before"].values()), _record_given]
    cls.__post_root_validators__ = [(True, _after(f)) for f in merged["after"].values()]
    inherited = getattr(cls, "model_fields", {})
    cls.model_fields = {
        name: FieldView(
            field.default,
            originals.get(name, getattr(inherited.get(name), "annotation", None)),
            field.field_info.description,
        )
        for name, field in cls.__fields__.items()
    }


# pydantic 2's ``BaseModel`` methods over pydantic 1's (no docstring: pydantic 1 would take it
# as the description of every model without one of its own).
class BaseModel(pydantic.BaseModel, metaclass=_Metaclass):
    class Config:
        smart_union = True
        copy_on_model_validation = "none"

    _compat_reject_none = pydantic.validator("*", pre=True, allow_reuse=True, check_fields=False)(
        _reject_none
    )

    def __init__(__pydantic_self__, **data: Any) -> None:  # noqa: N805 - pydantic 1's name
        type(__pydantic_self__)._compat_ready()
        stack = _GIVEN.__dict__.setdefault("stack", [])
        stack.append(None)
        try:
            super().__init__(**data)
        except V1ValidationError as error:
            if isinstance(error, ValidationError):
                raise
            raise ValidationError(error.raw_errors, type(__pydantic_self__), data) from None
        finally:
            stack.pop()

    @classmethod
    def _compat_ready(cls) -> None:
        """Resolve forward references on first use, as pydantic 2 does."""
        if cls.__dict__.get("__compat_deferred__"):
            cls.model_rebuild()

    @classmethod
    def model_rebuild(cls, **_: Any) -> bool:
        names = _module_names({"__module__": cls.__module__})
        for name, (annotation, constraints) in cls.__compat_deferred__.items():
            original = _resolve(annotation, names)
            field = cls.__fields__[name]
            field.type_ = field.outer_type_ = translate(original, constraints)
            field.prepare()
            cls.model_fields[name].annotation = original
        cls.__compat_deferred__ = {}
        return True

    @classmethod
    def validate(cls, value: Any) -> Any:
        """A nested model's value: an instance as it is, a mapping validated, else refused."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls.model_validate(value)
        raise V2Error(*none_error(cls)[:2])

    @classmethod
    def model_validate(cls, obj: Any) -> Any:
        if isinstance(obj, cls):
            return obj
        if not isinstance(obj, dict):
            error = V2Error(*none_error(cls)[:2])
            raise ValidationError([ErrorWrapper(error, loc=())], cls, obj)
        odd = [key for key in obj if not isinstance(key, str)]
        if odd:
            error = V2Error("extra_forbidden", "Extra inputs are not permitted")
            raise ValidationError([ErrorWrapper(error, loc=(odd[0],))], cls, obj)
        return cls(**obj)

    def model_dump(self, *, mode: str = "python", **kwargs: Any) -> Any:
        if mode == "json":
            return json.loads(self.json(**kwargs))
        return self.dict(**kwargs)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any:
        return self.copy(update=update, deep=deep)

    @property
    def model_fields_set(self) -> set[str]:
        return self.__fields_set__

    @classmethod
    def model_json_schema(cls, **_: Any) -> dict[str, Any]:
        cls._compat_ready()
        return model_json_schema(cls)
