"""Reads the app's state for the checker: each scenario invariant's value, with the workers
frozen after the workload, and for ``during: true`` ones a sample every ``SAMPLE_INTERVAL`` s
while faults are active (from the nemesis's arm until ``stop_faults``).

The run measures, the core judges (``core.invariants``): a value that cannot be read is kept as
an error, which the judge counts as broken, never as held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.app_state import InvariantValue
from celery_chaos.placements import Placement
from celery_chaos.services.readers import ReadError

SAMPLE_INTERVAL = 0.5


def sql_list(task_ids: Iterable[str]) -> str:
    """``'id1','id2'`` for ``{task_ids}`` (``NULL`` when there is none: ``IN (NULL)`` matches
    nothing, where ``IN ()`` would be a syntax error)."""
    quoted = ["'" + task_id.replace("'", "''") + "'" for task_id in task_ids]
    return ",".join(quoted) or "NULL"


def dispatched(history: list[h.Event]) -> list[str]:
    """The run's dispatched task ids, in dispatch order."""
    ids = (e["task_id"] for e in history if e["type"] == h.DISPATCH and e.get("task_id"))
    return list(dict.fromkeys(ids))


def fill(query: str, run_id: str, task_ids: Iterable[str]) -> str:
    """The query with ``{run_id}`` and ``{task_ids}`` filled in (nothing else is touched)."""
    query = query.replace("{run_id}", run_id)
    return query.replace("{task_ids}", sql_list(task_ids)) if "{task_ids}" in query else query


def read(backend: Placement, invariant: Any, query: str) -> float:
    """The invariant's value now. Raises :class:`ReadError` when it cannot be read."""
    if invariant.kind == "sql":
        return backend.read_sql(query, invariant.url)
    if invariant.kind == "redis":
        return float(backend.read_redis_count(query, invariant.url))
    return float(backend.count_paths(query))


def collect(
    backend: Placement,
    scenario: Any,
    history: list[h.Event],
    samples: dict[str, list[float]] | None = None,
) -> list[InvariantValue]:
    """Every invariant of ``scenario`` as it is now (workers frozen), with its ``samples``."""
    task_ids = dispatched(history)
    values = []
    for invariant in getattr(scenario, "invariants", []):
        query = fill(invariant.query, backend.run_id, task_ids)
        value, error = None, None
        try:
            value = read(backend, invariant, query)
        except (ReadError, OSError) as problem:
            error = str(problem)
        values.append(
            InvariantValue(
                name=invariant.name,
                kind=invariant.kind,
                query=query,
                expect=_expected(invariant.expect),
                value=value,
                error=error,
                during=invariant.during,
                samples=list((samples or {}).get(invariant.name, [])),
            )
        )
    return values


def _expected(rule: Any) -> Any:
    """``expect`` as plain data: a number, or ``{"min": a, "max": b}``."""
    return rule.model_dump(exclude_none=True) if hasattr(rule, "model_dump") else rule


class Sampler:
    """Samples the ``during: true`` invariants in a thread while faults are active."""

    def __init__(
        self, backend: Placement, scenario: Any, task_ids: Callable[[], Iterable[str]]
    ) -> None:
        self.backend = backend
        self.invariants = [i for i in getattr(scenario, "invariants", []) if i.during]
        self.task_ids = task_ids
        self.samples: dict[str, list[float]] = {i.name: [] for i in self.invariants}
        self.failed: dict[str, int] = {i.name: 0 for i in self.invariants}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sampler:
        if self.invariants:
            self._thread = threading.Thread(target=self._loop, name="invariants", daemon=True)
            self._thread.start()
        return self

    def sample_once(self) -> None:
        ids = list(self.task_ids())
        for invariant in self.invariants:
            query = fill(invariant.query, self.backend.run_id, ids)
            try:
                self.samples[invariant.name].append(read(self.backend, invariant, query))
            except (ReadError, OSError):
                self.failed[invariant.name] += 1  # a busy moment; the final read decides

    def _loop(self) -> None:
        while True:
            self.sample_once()
            if self._stop.wait(SAMPLE_INTERVAL):
                return

    def stop(self) -> dict[str, list[float]]:
        """Stop sampling (one last sample first) and return the samples by invariant name."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample_once()
        return self.samples
