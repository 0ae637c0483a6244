"""Storms: a long randomized run expanded, from the seed, into an ordinary fixed schedule.

A scenario with a ``storm:`` section says *how often* each fault kind strikes and how many tasks
arrive over how long; :func:`expand` draws every dispatch time, every fault time and every target
from the run's seed and returns the same scenario with a plain ``workload`` (one item per task,
each with its ``at``) and a plain ``faults`` list (``at`` triggers aimed at worker indexes). The
nemesis, the loop, the checker and the reports then run it like any other scenario, and the same
seed replays the same storm.

Worker indexes are known ahead: the initial workers are 0..count-1 and every ``start_worker`` or
``restart_worker`` creates the next index when it fires. The generator keeps the faults in time
order (the nemesis fires due faults in list order) and tracks which indexes are alive, so each
kill aims at a worker that is alive then, and a supervisor's replacement follows every death.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_parts import (
    Fault,
    StormFault,
    StormSpec,
    Target,
    Trigger,
    WorkloadItem,
)
from celery_chaos.faults.base import WHOLE_WORKER_POOLS
from celery_chaos.faults.registry import FAULTS


def expand(scenario: Scenario, seed: int) -> Scenario:
    """The storm drawn from ``seed`` as a fixed schedule; a scenario without a storm as is."""
    spec = scenario.storm
    if spec is None:
        return scenario
    count = scenario.workers.count
    workers = list(range(count)), count
    workload, faults = draw(spec, scenario.workload, workers, scenario.workers.pool, seed)
    # No re-validation: a storm may start more workers over its life than a fixed scenario may
    # name (they are never alive at once), and its schedule is built valid.
    return scenario.model_copy(update={"workload": workload, "faults": faults})


def draw(
    spec: StormSpec,
    templates: list[WorkloadItem],
    workers: tuple[list[int], int],
    pool: str,
    seed: int,
) -> tuple[list[WorkloadItem], list[Fault]]:
    """The storm's dispatches and faults drawn from ``seed``, over ``workers`` (the indexes
    alive now, and the index the next started worker gets)."""
    rng = random.Random(seed)
    workload = draw_workload(spec, templates, rng)
    return workload, draw_faults(spec, workers[0], workers[1], pool, rng)


def draw_workload(
    spec: StormSpec, templates: list[WorkloadItem], rng: random.Random
) -> list[WorkloadItem]:
    """``spec.tasks`` dispatches at uniform times over the storm, each a template drawn with
    its ``count`` as weight, in time order."""
    weights = [item.count for item in templates]
    drawn = [
        (rng.uniform(0, spec.duration), rng.choices(templates, weights)[0])
        for _ in range(spec.tasks)
    ]
    drawn.sort(key=lambda pair: pair[0])
    return [item.model_copy(update={"count": 1, "at": round(at, 3)}) for at, item in drawn]


@dataclass
class _Workers:
    """Which worker indexes are alive at each point of the drawn schedule."""

    alive: list[int]
    next_index: int
    faults: list[Fault] = field(default_factory=list)

    def emit(self, kind: str, at: float, worker: int | None = None, **extra: object) -> None:
        target = Target(worker=worker) if worker is not None else Target()
        when = Trigger(at=round(at, 3))
        self.faults.append(Fault(kind=kind, when=when, target=target, **extra))  # type: ignore[arg-type]

    def start(self, at: float) -> None:
        self.emit("start_worker", at, wait_ready=False)  # the storm goes on while it boots
        self.alive.append(self.next_index)
        self.next_index += 1


def _occurrences(spec: StormSpec, rng: random.Random) -> list[tuple[float, int, StormFault]]:
    """Every time each kind strikes, each gap drawn from its ``every`` window."""
    found = []
    for order, fault in enumerate(spec.faults):
        at = rng.uniform(fault.every.min, fault.every.max)
        while at < spec.duration:
            found.append((at, order, fault))
            at += rng.uniform(fault.every.min, fault.every.max)
    return found


def draw_faults(
    spec: StormSpec, alive: list[int], next_index: int, pool: str, rng: random.Random
) -> list[Fault]:
    """The storm's faults in time order, with a replacement ``replace_after`` s after each death,
    over the workers ``alive`` now (``next_index``: the index the next started worker gets).
    On a pool without child processes a ``kill_child`` is a whole-worker kill, drawn as one."""
    workers = _Workers(alive=list(alive), next_index=next_index)
    queue: list[tuple[float, int, StormFault | None]] = [
        (at, order, fault) for at, order, fault in _occurrences(spec, rng)
    ]
    heapq.heapify(queue)
    replacements = len(spec.faults)  # orders above every kind's: a replacement sorts after
    while queue:
        at, _, fault = heapq.heappop(queue)
        if fault is None:
            workers.start(at)
            continue
        kind, rule = fault.kind, FAULTS[fault.kind].storm
        assert rule is not None  # StormFault accepts only kinds with a storm rule
        if rule.poolless_as is not None and pool in WHOLE_WORKER_POOLS:
            kind, rule = rule.poolless_as, FAULTS[rule.poolless_as].storm
            assert rule is not None
        reads = FAULTS[kind].params.model_fields
        extra = {k: getattr(fault, k) for k in ("duration", "latency") if k in reads}
        if rule.aim == "broker":
            workers.emit(kind, at, **extra)  # down for duration s, if given
        elif rule.aim == "attempt":
            workers.emit(kind, at)  # a random running attempt, chosen when it fires
        elif not workers.alive:
            continue  # every worker is down, waiting for its replacement
        elif rule.aim == "worker":
            workers.emit(kind, at, rng.choice(workers.alive), **extra)
        elif rule.aim == "replace":
            workers.emit(kind, at, workers.alive.pop(rng.randrange(len(workers.alive))))
            workers.alive.append(workers.next_index)
            workers.next_index += 1
        elif rule.aim == "death":  # the worker exits, nobody restarts it
            workers.emit(kind, at, workers.alive.pop(rng.randrange(len(workers.alive))))
            if spec.replace_after is not None:
                heapq.heappush(queue, (at + spec.replace_after, replacements, None))
                replacements += 1
    return workers.faults
