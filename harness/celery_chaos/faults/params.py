"""The fault options a scenario may give (``headroom``, ``wait``, ``duration``, ...) as typed,
bounded fields, and the memory-size parser they share with ``workers.memory_limit``.

Each kind's parameter model is built from these types, and :class:`celery_chaos.core.scenario.Fault`
declares its flat YAML keys with the same types, so one bound and one message hold everywhere.
"""

from __future__ import annotations

import re
from typing import Annotated

from celery_chaos.pydantic_compat import AfterValidator, BaseModel, ConfigDict, Field

# Upper bounds (README, "Limits"): far above any real scenario, low enough that a typo (an extra
# zero, seconds written as milliseconds) is refused instead of dispatched or waited for.
MAX_SECONDS = 86_400.0  # timeouts, offsets, delays: one day
MAX_MEMORY = 1024**4  # 1 TiB

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: str | int) -> int:
    """Parse ``256M``/``1G``/``512Mi``/bytes into bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a memory size: {value!r} (use e.g. 256M, 1G)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "")[:1].lower()])


def bounded_size(value: str | int | None) -> str | int | None:
    """A memory size above 0 and at most :data:`MAX_MEMORY` (as written), else ValueError."""
    if value is not None and not 0 < parse_size(value) <= MAX_MEMORY:
        raise ValueError(f"{value!r}: a memory size must be above 0 and at most 1T")
    return value


def byte_rate(value: str | int) -> str | int:
    """A bytes-per-second rate written like a size (``500``, ``16k``, ``1M``)."""
    try:
        rate = parse_size(value)
    except ValueError:
        raise ValueError(f"not a byte rate: {value!r} (use e.g. 500, 16k, 1M)") from None
    if not 0 < rate <= MAX_MEMORY:
        raise ValueError(f"{value!r}: a byte rate must be above 0 and at most 1T per second")
    return value


def _size(value: str | int) -> str | int:
    bounded_size(value)
    return value


# The kind-specific options, each with its bound and its message.
Headroom = Annotated[str | int, AfterValidator(_size)]
Wait = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
Duration = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
Latency = Annotated[float, Field(gt=0, le=60.0)]
Rate = Annotated[str | int, AfterValidator(byte_rate)]


class Params(BaseModel):
    """A kind's parameter model: the options it reads, with today's defaults; a key it does
    not read is refused (a ``latency`` on a ``kill_child`` would do nothing)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NoParams(Params):
    """A kind that reads no option."""


class TimedParams(Params):
    """``duration``: seconds until the fault ends by itself (none: until the run ends)."""

    duration: Duration | None = None


# evict, scale_down: seconds between SIGTERM and SIGKILL (0: at once, as a force delete does).
Grace = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
# scale_down: workers removed (64: a scenario's most workers, core.scenario_base.MAX_WORKERS).
WorkerCount = Annotated[int, Field(ge=1, le=64)]


class DeployFields(BaseModel):
    """The flat YAML keys of the faults that remove and replace workers (``evict``,
    ``scale_down``, ``rolling_deploy``), declared beside their bounds; a scenario's ``Fault``
    takes them, and each kind's parameter model says which of them it reads."""

    grace: Grace = Field(
        default=30.0, description="evict, scale_down, rolling_deploy: SIGTERM to SIGKILL, s"
    )
    count: WorkerCount = Field(default=1, description="scale_down: workers removed")
    surge: WorkerCount = Field(default=1, description="rolling_deploy: new workers at a time")
    app: str | None = Field(default=None, min_length=1, description="rolling_deploy: new app")
    env: dict[str, str] | None = Field(default=None, description="rolling_deploy: new workers' env")
