"""The checker's verdict vocabulary and result types: per-task reports (attempts, outcome,
labels), locks, side effects, and :class:`Verdicts`, which counts them. Pure data; the rules that
fill them are in :mod:`celery_chaos.core.checker`, whose docstring states the semantics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from celery_chaos.core.crashes import WorkerCrash, crash_text
from celery_chaos.core.distribution import redelivery_distribution
from celery_chaos.core.invariants import broken_text, stored_text
from celery_chaos.core.workflows import (
    WORKFLOW_VERDICTS,
    WorkflowReport,
)

OUTCOMES = ("ok", "recovered", "duplicate_executions", "pending", "dead_lettered", "lost")
LABELS = ("failed", "retried", "redelivery_loop", "dropped_at_delivery_limit", "revoked")
FINDINGS = (
    "duplicate_side_effects",
    "stuck_locks",
    "unexpected",
    "worker_crashes",
    "revoked_but_ran",
    "invariant_violations",
    "result_not_stored",
)
VERDICTS = OUTCOMES + LABELS + FINDINGS + WORKFLOW_VERDICTS
DEFAULT_REDELIVERY_THRESHOLD = 5
RETRY = "RETRY"  # attempt_end state of an attempt that raised celery.exceptions.Retry


@dataclass
class Attempt:
    attempt: int
    worker: str | None
    pid: int | None
    redelivered: bool
    started: float
    ended: float | None = None
    state: str | None = None
    died: float | None = None
    exit_reason: str | None = None  # human text
    exit_reason_code: str | None = None  # a code of core.exit_reasons (tools rely on it)
    interrupted_by: int | None = None  # index of the fault that hit this attempt
    queue: str | None = None  # the queue its message was delivered from (agent's attempt_start)
    checkpoints: int = 0
    last_checkpoint: str | None = None
    stores_result: bool = False  # the agent's attempt_start: its result goes to a backend

    @property
    def running(self) -> bool:
        return self.ended is None and self.died is None


@dataclass
class TaskReport:
    task_id: str
    index: int | None
    task: str
    outcome: str = "lost"
    labels: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    in_broker: list[str] = field(default_factory=list)
    redelivery_latencies: list[float] = field(default_factory=list)
    dispatched: float | None = None

    @property
    def verdicts(self) -> list[str]:
        return [self.outcome, *self.labels]


@dataclass
class LockReport:
    name: str
    owner: str | None
    owner_attempt: int | None
    stuck: bool
    reason: str


@dataclass
class EffectReport:
    key: str
    applied: int
    attempted: int
    tasks: list[str]
    duplicated: bool


@dataclass
class Verdicts:
    counts: dict[str, int]
    tasks: list[TaskReport]
    locks: list[LockReport]
    effects: list[EffectReport]
    unexpected: list[str]
    faults: list[dict[str, Any]]
    crashes: list[WorkerCrash] = field(default_factory=list)
    workflows: list[WorkflowReport] = field(default_factory=list)
    revoked_ran: list[str] = field(default_factory=list)
    broker_notes: list[str] = field(default_factory=list)  # BrokerState.notes, as found
    # Why each finding happened (core.explain), when the caller had the history and settings
    # at hand (chaos_env.verdicts(), testing.run_scenario); not in as_dict: result.json
    # keeps them once, as the run's ``explanations``.
    explanations: list[str] = field(default_factory=list)
    # The app's state (core.invariants): each invariant judged, and the tasks whose SUCCESS
    # the result backend does not hold, with the state it holds (``result_states``).
    invariants: list[dict[str, Any]] = field(default_factory=list)
    result_not_stored: list[str] = field(default_factory=list)
    result_states: dict[str, str] = field(default_factory=dict)
    result_backend: str | None = None  # the workers' result backend, credentials masked

    def offenders(self, verdict: str) -> list[str]:
        """Human-readable names of what made ``verdict`` non-zero."""
        if verdict in OUTCOMES or verdict in LABELS:
            return [f"{t.task}[{t.task_id}]" for t in self.tasks if verdict in t.verdicts]
        if verdict == "stuck_locks":
            return [f"lock {lock.name} (owner {lock.owner})" for lock in self.locks if lock.stuck]
        if verdict == "duplicate_side_effects":
            return [f"effect {e.key} applied {e.applied}x" for e in self.effects if e.duplicated]
        if verdict == "worker_crashes":
            return [crash_text(crash) for crash in self.crashes]
        if verdict in WORKFLOW_VERDICTS:
            return [
                f"{w.kind} {w.workflow_id} (index {w.index}): {w.reason}"
                for w in self.workflows
                if w.verdict == verdict
            ]
        if verdict == "revoked_but_ran":
            return [f"revoked task {task_id} ran" for task_id in self.revoked_ran]
        if verdict == "invariant_violations":
            return [broken_text(judged) for judged in self.invariants if not judged["held"]]
        if verdict == "result_not_stored":
            names = {t.task_id: t.task for t in self.tasks}
            return [
                f"{names.get(task_id, '?')}[{task_id}] completed but the result backend"
                f" {stored_text(self.result_states.get(task_id, 'PENDING'))}"
                for task_id in self.result_not_stored
            ]
        return list(self.unexpected)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdicts": self.counts,
            "tasks": [asdict(t) | {"verdicts": t.verdicts} for t in self.tasks],
            "locks": [asdict(lock) for lock in self.locks],
            "effects": [asdict(e) for e in self.effects],
            "unexpected": self.unexpected,
            "faults": self.faults,
            "worker_crashes": [asdict(crash) for crash in self.crashes],
            "workflows": [asdict(w) | {"verdict": w.verdict} for w in self.workflows],
            "revoked_but_ran": self.revoked_ran,
            "broker_notes": self.broker_notes,
            "invariants": self.invariants,
            "result_not_stored": self.result_not_stored,
            "result_states": self.result_states,
            "result_backend": self.result_backend,
            "totals": self.totals(),
            "redelivery_latency": redelivery_distribution(self.tasks),
        }

    def totals(self) -> dict[str, int]:
        """The storm's headline figures (README: Storms): what a long run did to its tasks."""
        faults = [f for f in self.faults if f.get("status") == "injected"]
        return {
            "tasks": len(self.tasks),
            "lost": self.counts["lost"],
            "duplicated": self.counts["duplicate_executions"],
            "pending": self.counts["pending"],
            "stuck_locks": self.counts["stuck_locks"],
            "worker_crashes": self.counts["worker_crashes"],
            "faults_injected": len(faults),
        }
