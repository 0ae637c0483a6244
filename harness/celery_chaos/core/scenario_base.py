"""The building blocks of the scenario schema: fault kinds, limits, sizes, counts and ranges,
``expect``/``expect_when`` rules, and the one way a validation error is worded.

Split from :mod:`celery_chaos.core.scenario` so each module stays small; import each name from
here, its home.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from celery_chaos.core.checker import VERDICTS
from celery_chaos.core.yaml_input import InputError
from celery_chaos.faults.params import MAX_SECONDS
from celery_chaos.faults.registry import KINDS
from celery_chaos.pydantic_compat import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

# The fault kinds, in the registry's order (one module per kind in celery_chaos.faults).
FaultKindName = Literal[KINDS]  # type: ignore[valid-type]
FAULT_KINDS: tuple[str, ...] = KINDS

# Upper bounds (README, "Limits"): far above any real scenario, low enough that a typo (an extra
# zero, seconds written as milliseconds) is refused instead of dispatched or waited for. The
# seconds and memory bounds live with the fault options (celery_chaos.faults.params).
MAX_TASKS = 100_000  # dispatched tasks in one scenario
MAX_WORKERS = 64  # workers alive at once, counting start_worker/restart_worker faults
MAX_CONCURRENCY = 256  # pool size of one worker
MAX_FAULTS = 1_000

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Count = Annotated[int, Field(strict=True, ge=0)]


class ScenarioError(InputError):
    """A scenario file is malformed; the message names the file, the field and the reason."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Range(Strict):
    min: Count | None = None
    max: Count | None = None

    @model_validator(mode="after")
    def _satisfiable(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}: no count can meet both")
        return self


# What an ``expect_when`` entry may depend on: the broker kind, and the version of a library the
# workers run (a PEP 440 specifier such as ``<5.4``), because behaviour under worker death
# legitimately changes between brokers and releases.
CONDITION_KEYS = ("broker", "celery", "kombu", "billiard", "redis-py")


class ExpectWhen(Strict):
    """Expectations that apply instead of the base ``expect`` entries they name, when every
    condition holds; ``why`` names the release note, upstream issue or broker behaviour."""

    when: dict[str, str] = Field(min_length=1)
    expect: dict[str, Count | Range] = Field(min_length=1)
    why: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in (data.get("when") or {}).items():
                _check_condition(key, value)
            for verdict, rule in (data.get("expect") or {}).items():
                check_expectation(verdict, rule)
        return data


def _check_condition(key: Any, value: Any) -> None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if key not in CONDITION_KEYS:
        raise ValueError(f"when: unknown condition {key!r}; expected one of {CONDITION_KEYS}")
    if key == "broker":
        return
    try:
        SpecifierSet(str(value))
    except InvalidSpecifier:
        raise ValueError(
            f"when.{key}: {value!r}: expected a version specifier such as '<5.4'"
        ) from None


def check_expectation(verdict: Any, rule: Any) -> None:
    if verdict not in VERDICTS:
        raise ValueError(
            f"expect: unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}"
        )
    if isinstance(rule, dict):
        try:
            Range.model_validate(rule)
        except ValidationError as error:
            joint = "." if error.errors()[0]["loc"] else ": "
            raise ValueError(f"expect.{verdict}{joint}{first_error(error)}") from None
    elif isinstance(rule, bool) or not isinstance(rule, int):
        raise ValueError(
            f"expect.{verdict}: {rule!r}: expected a count (e.g. 0) or a range {{min: 1, max: 3}}"
        )
    elif rule < 0:
        raise ValueError(f"expect.{verdict}: {rule}: a count cannot be negative")


def _field_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _number(value: Any) -> Any:
    """``86400.0`` as ``86400``: bounds and inputs read as the user wrote them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def first_error(error: ValidationError) -> str:
    """The first validation error as ``field.path[0]: what was expected`` (cross-field checks,
    which have no location, name their own field path in the message)."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "less_than_equal":
        value, bound = _number(first["input"]), _number(first["ctx"]["le"])
        message = f"{value!r} is above the upper bound {bound} (README: Limits)"
    return f"{_field_path(first['loc'])}: {message}" if first["loc"] else message
