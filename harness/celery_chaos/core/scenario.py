"""Scenario files: the YAML schema, its validation, and loading a suite from paths.

A scenario says which Celery settings to test (``celery``), the broker (``broker``), the workers
(``workers``), what to dispatch (``workload``), which faults to inject when (``faults``) and what
verdicts to expect (``expect``). Every key is documented in README.md ("Scenario reference").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from celery_chaos.core.checker import DEFAULT_REDELIVERY_THRESHOLD, VERDICTS

FaultKind = Literal[
    "kill_child",
    "kill_worker",
    "oom",
    "terminate",
    "quit",
    "pause",
    "resume",
    "restart_broker",
    "start_worker",
    "restart_worker",
    "partition",
    "heal",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file, the field and the reason."""


def parse_size(value: str | int) -> int:
    """Parse ``256M``/``1G``/``512Mi``/bytes into bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a memory size: {value!r} (use e.g. 256M, 1G)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "")[:1].lower()])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(Strict):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class BrokerSpec(Strict):
    persistence: Literal["none", "aof"] = "none"
    image: str | None = None


class WorkersSpec(Strict):
    count: int = Field(default=1, ge=0)
    concurrency: int = Field(default=2, ge=1)
    pool: Literal["prefork", "solo", "threads"] = "prefork"
    app: str = "celery_chaos.sample_tasks.app"
    env: dict[str, str] = Field(default_factory=dict)
    memory_limit: str | int | None = None
    image: str | None = None

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_size(value)
        return value


class TaskOptions(Strict):
    countdown: float | None = None
    eta: float | None = Field(default=None, description="seconds after dispatch")
    expires: float | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    priority: int | None = None
    queue: str | None = None


class WorkloadItem(Strict):
    task: str
    count: int = Field(default=1, ge=1)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    options: TaskOptions = Field(default_factory=TaskOptions)
    at: float = Field(default=0.0, ge=0, description="dispatch offset, seconds after start")


class RandomWindow(Strict):
    min: float = Field(ge=0)
    max: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> RandomWindow:
        if self.max < self.min:
            raise ValueError("random.max must be >= random.min")
        return self


class Trigger(Strict):
    task: int | None = Field(default=None, ge=0)
    checkpoint: str | None = None
    attempt: int = Field(default=1, ge=1)
    at: float | None = Field(default=None, ge=0)
    after_fault: int | None = Field(default=None, ge=0)
    delay: float = Field(default=0.0, ge=0)
    random: RandomWindow | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        kinds = [
            name
            for name, present in (
                ("checkpoint", self.checkpoint is not None),
                ("at", self.at is not None),
                ("after_fault", self.after_fault is not None),
                ("random", self.random is not None),
            )
            if present
        ]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of checkpoint (with task), at, after_fault, random;"
                f" got {kinds or 'none'}"
            )
        if self.checkpoint is not None and self.task is None:
            raise ValueError("a checkpoint trigger needs task: N (index into the workload)")
        return self


class Target(Strict):
    task: int | None = Field(default=None, ge=0)
    worker: int | None = Field(default=None, ge=0)


class Fault(Strict):
    kind: FaultKind
    when: Trigger
    target: Target = Field(default_factory=Target)
    headroom: str | int = "48M"
    wait: float = Field(default=30.0, gt=0)
    duration: float | None = Field(default=None, gt=0)

    @field_validator("headroom")
    @classmethod
    def _size(cls, value: str | int) -> str | int:
        parse_size(value)
        return value

    def target_task(self) -> int | None:
        """The workload index this fault aims at: explicit target, else the trigger's task."""
        return self.target.task if self.target.task is not None else self.when.task


class Scenario(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str
    celery: dict[str, Any] = Field(default_factory=dict)
    broker: BrokerSpec = Field(default_factory=BrokerSpec)
    workers: WorkersSpec = Field(default_factory=WorkersSpec)
    workload: list[WorkloadItem] = Field(min_length=1)
    faults: list[Fault] = Field(default_factory=list)
    expect: dict[str, int | Range] = Field(default_factory=dict)
    timeout: float = Field(default=60.0, gt=0)
    settle: float = Field(default=1.0, ge=0)
    redelivery_threshold: int = Field(default=DEFAULT_REDELIVERY_THRESHOLD, ge=1)
    seed: int | None = None

    @field_validator("expect")
    @classmethod
    def _known_verdicts(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(VERDICTS))
        if unknown:
            raise ValueError(
                f"unknown verdict {unknown[0]!r}; expected one of {', '.join(VERDICTS)}"
            )
        return value

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        total = self.task_count
        for i, fault in enumerate(self.faults):
            task = fault.target_task()
            if task is not None and task >= total:
                raise ValueError(
                    f"faults[{i}].target: aims at task {task} but the workload has {total}"
                )
            after = fault.when.after_fault
            if after is not None and after >= i:
                raise ValueError(f"faults[{i}].when.after_fault: must name an earlier fault")
        return self

    @property
    def task_count(self) -> int:
        return sum(item.count for item in self.workload)


def _field_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def first_error(error: ValidationError) -> str:
    """The first validation error as ``field.path[0]: what was expected`` (cross-field checks,
    which have no location, name their own field path in the message)."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    return f"{_field_path(first['loc'])}: {message}" if first["loc"] else message


def parse_scenario(data: Any, source: str) -> Scenario:
    """Validate parsed YAML; errors name ``source``, the field path and what was expected."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: (top level): expected a mapping of scenario keys")
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(f"{source}: {first_error(error)}") from None


def load_file(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise ScenarioError(f"{path}: {where}: not valid YAML ({error})") from None
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error.strerror}") from None
    return parse_scenario(data, str(path))


def discover(paths: list[Path]) -> list[Path]:
    """Scenario files under ``paths``: files as given, folders' own *.yaml/*.yml (not their
    subfolders, so ``scenarios/`` stays the default suite and ``scenarios/docker-only/`` is opt-in).
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        elif path.exists():
            found.append(path)
        else:
            raise ScenarioError(f"{path}: no such file or folder")
    return found


def load_suite(paths: list[Path], only: list[str] | None = None) -> list[Scenario]:
    """Load every scenario under ``paths``; names must be unique; ``only`` filters by name."""
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for path in discover(paths):
        scenario = load_file(path)
        if scenario.name in seen:
            raise ScenarioError(
                f"{path}: name: duplicate scenario name {scenario.name!r}"
                f" (also in {seen[scenario.name]})"
            )
        seen[scenario.name] = path
        scenarios.append(scenario)
    if only:
        missing = sorted(set(only) - set(seen))
        if missing:
            raise ScenarioError(f"--only: no scenario named {missing[0]!r}")
        scenarios = [s for s in scenarios if s.name in only]
    return scenarios
