"""What :class:`celery_chaos.run.chaos_env.ChaosEnv` keeps per test and reads of the app's state.

A test's slice (its name, seed, loop and dispatches), the ``during: true`` sampler it runs while
it is active, and the app's state as ``env.verdicts()`` judges it: the marker's invariants read at
that moment, scoped to the test's tasks (``{task_ids}``), and the result backend's record of the
test's tasks (``result_not_stored``). Also the storm helpers (the schema validates a storm's
arguments as in a scenario file).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.app_state import AppState
from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_base import first_error
from celery_chaos.core.scenario_parts import Fault, StormSpec, WorkloadItem
from celery_chaos.placements import Placement
from celery_chaos.pydantic_compat import ValidationError
from celery_chaos.run import app_state, results_state, workload
from celery_chaos.run.loop import Loop
from celery_chaos.run.workload import Dispatch


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[-120:] or "test"


@dataclass
class TestSlice:
    """What one test owns in a shared environment: its name, seed and loop (its own cursor over
    the shared history, its own watcher and nemesis, the tasks it dispatched)."""

    __test__ = False  # not a pytest test class

    name: str
    seed: int
    loop: Loop
    dispatches: list[Dispatch] = field(default_factory=list)
    scheduled: set[str] = field(default_factory=set)  # a storm's tasks, sent at their offsets
    drawn: set[int] = field(default_factory=set)  # indexes of the faults a storm drew
    sampler: app_state.Sampler | None = None  # the ``during: true`` invariants, while it runs
    used_services: bool = False  # asked for a service's URL (may have written to it)

    @property
    def task_ids(self) -> set[str]:
        return {d.task_id for d in self.dispatches}

    @property
    def sent_any(self) -> bool:
        return any(d.sent for d in self.dispatches) or bool(self.scheduled)


def has_app_state(scenario: Scenario) -> bool:
    """Whether the environment carries app state a test can change: services, setup or
    invariants (files in the workers' folder count: ``path`` invariants read them)."""
    services = scenario.services
    declared = services is not None and any(
        getattr(services, name, None) is not None for name in ("postgres", "redis")
    )
    return declared or bool(scenario.setup) or bool(scenario.invariants)


def start_sampler(backend: Placement, scenario: Scenario, test: TestSlice) -> None:
    """Sample the ``during: true`` invariants from now until the test ends."""
    if any(invariant.during for invariant in scenario.invariants):
        test.sampler = app_state.Sampler(backend, scenario, lambda: test.task_ids).start()


def stop_sampler(test: TestSlice) -> None:
    if test.sampler is not None:
        test.sampler.stop()


def read_app_state(
    backend: Placement, scenario: Scenario, test: TestSlice, history: list[h.Event]
) -> AppState:
    """The marker's invariants as they are now (``{task_ids}``: this test's tasks) and what the
    result backend holds for this test's completed tasks."""
    samples = {}
    if test.sampler is not None:
        samples = {name: list(values) for name, values in test.sampler.samples.items()}
    invariants = app_state.collect(backend, scenario, history, samples)
    assert backend.ledger is not None
    results, masked = results_state.read_result_states(backend, backend.ledger.read_all())
    if results is not None:
        ours = test.task_ids
        results = {task_id: state for task_id, state in results.items() if task_id in ours}
    return AppState(invariants, results=results, result_backend=masked)


def fault_spec(
    test: TestSlice,
    kind: str,
    index: int | None,
    checkpoint: str | None,
    attempt: int,
    worker: int | None,
    delay: float,
    options: dict[str, Any],
) -> Fault:
    """The scenario schema's fault for ``chaos_env.fault``'s arguments (same validation, same
    errors); ``index``: the dispatch slot of the task it targets."""
    when = (
        {"task": index, "checkpoint": checkpoint, "attempt": attempt, "delay": delay}
        if checkpoint is not None
        else {"at": round(test.loop.now() + delay, 4)}
    )
    target = {k: v for k, v in (("task", index), ("worker", worker)) if v is not None}
    try:
        return Fault.model_validate({"kind": kind, "when": when, "target": target, **options})
    except ValidationError as error:
        raise ValueError(f"fault({kind!r}): {first_error(error)}") from None


def storm_input(
    workload: list[dict[str, Any]],
    duration: float,
    tasks: int,
    faults: list[dict[str, Any]],
    replace_after: float | None,
) -> tuple[StormSpec, list[WorkloadItem]]:
    """``storm()``'s arguments validated by the scenario schema (same errors, one line)."""
    fields = {"duration": duration, "tasks": tasks, "faults": faults}
    try:
        spec = StormSpec.model_validate(fields | {"replace_after": replace_after})
        templates = [WorkloadItem.model_validate(item) for item in workload]
    except ValidationError as error:
        raise ValueError(f"storm: {first_error(error)}") from None
    if not templates or any(item.task is None for item in templates):
        raise ValueError("storm: workload must list tasks ({'task': name, ...}), no workflows")
    return spec, templates


def timed_dispatches(items: list[WorkloadItem], first: int, start: float) -> list[Dispatch]:
    """A storm's drawn tasks as dispatches numbered from ``first``, each due ``start`` + its
    offset on the test's clock."""
    return [
        workload.task_dispatch(item, first + n, str(uuid.uuid4()), at=start + item.at)
        for n, item in enumerate(items)
    ]
