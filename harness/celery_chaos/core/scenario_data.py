"""The app's own state in a scenario: the services it needs (``services``), the steps that
prepare them (``setup``) and what must hold of them after the run (``invariants``).

Split from :mod:`celery_chaos.core.scenario` so each module stays small. The run starts the
services and reads the invariants (``run.app_state``); the checker judges the values
(``core.invariants``) without ever reading a scenario's ``expect``.
"""

from __future__ import annotations

import re
from typing import Any

from celery_chaos.core.scenario_base import Count, Range, Seconds, Strict, first_error
from celery_chaos.pydantic_compat import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Placeholders a query may hold: ``{run_id}`` anywhere, ``{task_ids}`` (a quoted SQL list) in SQL.
PLACEHOLDERS = ("run_id", "task_ids")
URL_SCHEMES = {
    "sql": ("sqlite:///", "postgresql://", "postgres://"),
    "redis": ("redis://", "rediss://", "unix://"),
}


class PostgresService(Strict):
    """A fresh PostgreSQL per run; workers and setup steps get its ``DATABASE_URL``."""

    image: str | None = Field(default=None, min_length=1)
    database: str = Field(default="app", pattern=r"^[a-z_][a-z0-9_]*$", max_length=63)


class RedisService(Strict):
    """The app's own Redis (cache, locks), apart from the broker; workers get ``REDIS_URL``."""

    image: str | None = Field(default=None, min_length=1)


class ServicesSpec(Strict):
    postgres: PostgresService | None = None
    redis: RedisService | None = None


class SetupStep(Strict):
    """One step before the workers start: SQL against ``services.postgres`` or a shell command
    in the app's environment (the services' URLs in its env, the workers' working directory)."""

    sql: str | None = Field(default=None, min_length=1)
    run: str | None = Field(default=None, min_length=1)
    timeout: Seconds = 120.0

    @model_validator(mode="after")
    def _one_action(self) -> SetupStep:
        if (self.sql is None) == (self.run is None):
            raise ValueError("give exactly one of sql or run")
        if self.sql is not None and "timeout" in self.model_fields_set:
            raise ValueError("timeout: only a run step has a timeout")
        return self


class Invariant(Strict):
    """What must hold of the app's state: a number read by SQL, a count of Redis keys matching
    a pattern, or a count of files matching a glob (relative to the workers' working directory),
    compared with ``expect``; ``during: true`` also samples it while faults are active."""

    name: str = Field(min_length=1, max_length=200)
    sql: str | None = Field(default=None, min_length=1)
    redis: str | None = Field(default=None, min_length=1)
    path: str | None = Field(default=None, min_length=1)
    expect: Count | Range
    during: bool = False
    url: str | None = Field(default=None, min_length=1)

    @property
    def kind(self) -> str:
        return "sql" if self.sql is not None else "redis" if self.redis is not None else "path"

    @property
    def query(self) -> str:
        """The SQL, key pattern or glob as written (placeholders not yet filled in)."""
        return self.sql or self.redis or self.path or ""

    @field_validator("expect", mode="before")
    @classmethod
    def _expect_shape(cls, rule: Any) -> Any:
        """Checked before the ``int | Range`` union so the message names ``expect`` itself."""
        if isinstance(rule, dict):
            try:
                Range.model_validate(rule)
            except ValidationError as error:
                raise ValueError(first_error(error)) from None
        elif isinstance(rule, bool) or not isinstance(rule, int) or rule < 0:
            raise ValueError(f"{rule!r}: expected a count (e.g. 0) or a range {{min: 1, max: 3}}")
        return rule

    @field_validator("sql", "redis", "path")
    @classmethod
    def _placeholders(cls, query: str | None, info: ValidationInfo) -> str | None:
        for name in re.findall(r"\{(\w+)\}", query or ""):
            if name not in PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{name}}}; expected {{run_id}}")
            if name == "task_ids" and info.field_name != "sql":
                raise ValueError("{task_ids} is only for sql (a quoted SQL list)")
        return query

    @field_validator("url")
    @classmethod
    def _url_fits(cls, url: str | None, info: ValidationInfo) -> str | None:
        kinds = [k for k in ("sql", "redis", "path") if info.data.get(k) is not None]
        if url is None or len(kinds) != 1:
            return url
        if kinds[0] == "path":
            raise ValueError("a path invariant reads the workers' files, not a URL")
        if not url.startswith(URL_SCHEMES[kinds[0]]):
            raise ValueError(
                f"{url.split(':', 1)[0]!r}: expected a URL starting with"
                f" {' or '.join(URL_SCHEMES[kinds[0]])}"
            )
        return url

    @model_validator(mode="after")
    def _one_reading(self) -> Invariant:
        if sum(getattr(self, k) is not None for k in ("sql", "redis", "path")) != 1:
            raise ValueError("give exactly one of sql, redis or path")
        return self


def check_app_state(data: Any) -> None:
    """Cross-field checks of services, setup and invariants; each message names its field."""
    services = data.services
    for i, step in enumerate(data.setup):
        if step.sql is not None and services.postgres is None:
            raise ValueError(
                f"setup[{i}].sql: needs services.postgres (add services: {{postgres: {{}}}})"
            )
    seen: set[str] = set()
    for i, invariant in enumerate(data.invariants):
        if invariant.name in seen:
            raise ValueError(f"invariants[{i}].name: duplicate invariant name {invariant.name!r}")
        seen.add(invariant.name)
        if invariant.url is not None or invariant.kind == "path":
            continue
        if getattr(services, "postgres" if invariant.kind == "sql" else "redis") is None:
            service = "postgres" if invariant.kind == "sql" else "redis"
            raise ValueError(
                f"invariants[{i}].{invariant.kind}: needs services.{service}"
                f" (or a url to read another database)"
            )
