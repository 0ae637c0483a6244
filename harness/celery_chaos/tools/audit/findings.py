"""Findings and their wording, shared by the broker-independent and the RabbitMQ rules."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from celery_chaos.tools.audit.settings import CELERY_DEFAULTS, DEFAULT_TASK, Context, TaskPolicy

ERROR, WARNING, INFO = "error", "warning", "info"
LEVELS = (ERROR, WARNING, INFO)


def shown_by(scenario: str) -> str:
    """The command that runs the built-in scenario demonstrating a finding.

    No path: ``celery-chaos run`` uses the suite installed with the package, so the command works
    for anyone who installed the wheel, with no clone of the repository.
    """
    return f"celery-chaos run --only {scenario}"


@dataclass(frozen=True)
class Finding:
    """One risk: how bad, which setting, what it does when a worker dies, where it is shown."""

    level: str
    code: str
    setting: str
    causes: str
    scenario: str | None = None
    tasks: tuple[str, ...] = ()

    @property
    def shown_by(self) -> str | None:
        return shown_by(self.scenario) if self.scenario else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tasks": list(self.tasks), "shown_by": self.shown_by}


# --- wording -----------------------------------------------------------------------------------


def task_names(policies: list[TaskPolicy]) -> tuple[str, ...]:
    return tuple(p.name for p in policies if p.name != DEFAULT_TASK)


def setting_text(ctx: Context, key: str, affected: list[TaskPolicy], option: str) -> str:
    """``task_acks_late=False (Celery default)``, plus the tasks that set ``option`` themselves."""
    value = ctx.config[key]
    text = f"{key}={value!r}" + (" (Celery default)" if value == CELERY_DEFAULTS[key] else "")
    own = [p.name for p in affected if option in p.own]
    if own:
        text += f"; {option} set on task {', '.join(own)}"
    return text


def visibility_text(ctx: Context) -> str:
    """The visibility timeout with Kombu's restore sweep beside it (the core's one wording)."""
    return ctx.sweep.visibility_with_sweep()
