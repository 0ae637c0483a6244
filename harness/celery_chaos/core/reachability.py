"""Cross-field checks of a scenario: what its faults aim at exists, and what it schedules can
happen before its ``timeout``. A fault that can never fire (or a task never dispatched) would make
a run that proves nothing, so such a scenario is refused when it is loaded.

Each check raises ``ValueError`` whose message names its own field path (pydantic reports a
model-level error without a location).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery_chaos.core.scenario import Scenario
    from celery_chaos.core.scenario_parts import Fault


def check_fault_refs(i: int, fault: Fault, tasks: int, workers: int) -> None:
    task = fault.target_task()
    if task is not None and task >= tasks:
        raise ValueError(f"faults[{i}].target: aims at task {task} but the workload has {tasks}")
    after = fault.when.after_fault
    if after is not None and after >= i:
        raise ValueError(f"faults[{i}].when.after_fault: must name an earlier fault")
    worker = fault.target.worker
    if worker is not None and worker >= workers:
        raise ValueError(
            f"faults[{i}].target.worker: worker {worker} never exists (workers are numbered"
            f" from 0; {workers} in all, counting start_worker/restart_worker faults)"
        )


def _earliest(scenario: Scenario) -> list[float]:
    """The earliest time offset at which each fault could fire (a chain adds its delays)."""
    items = [item.at for item in scenario.workload for _ in range(item.count * item.members)]
    times: list[float] = []
    for fault in scenario.faults:
        when = fault.when
        if when.at is not None:
            base = when.at
        elif when.random is not None:
            base = when.random.min
        elif when.after_fault is not None:
            base = times[when.after_fault]
        else:  # a checkpoint: not before its task is dispatched
            base = items[when.task] if when.task is not None else 0.0
        times.append(base + when.delay)
    return times


def check_reachable(scenario: Scenario) -> None:
    """Refuse what the run's ``timeout`` ends before it can happen: such a fault never fires,
    so the run would prove nothing."""
    timeout = scenario.timeout
    for i, item in enumerate(scenario.workload):
        if item.at >= timeout:
            raise ValueError(
                f"workload[{i}].at: {item.at:g}s is not before the timeout ({timeout:g}s):"
                " it would never be dispatched"
            )
    for i, fault in enumerate(scenario.faults):
        window = fault.when.random
        latest = window.max + fault.when.delay if window is not None else 0.0
        if latest >= timeout:
            raise ValueError(
                f"faults[{i}].when.random.max: a time drawn up to t={latest:g}s"
                f" is not always before the timeout ({timeout:g}s): some seeds would never fire it"
            )
    for i, earliest in enumerate(_earliest(scenario)):
        if earliest >= timeout:
            chain = (
                " (after its after_fault chain)"
                if scenario.faults[i].when.after_fault is not None
                else ""
            )
            raise ValueError(
                f"faults[{i}].when: fires at t={earliest:g}s at the earliest{chain}, not before"
                f" the timeout ({timeout:g}s): it can never fire"
            )
