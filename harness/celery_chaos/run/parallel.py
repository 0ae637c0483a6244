"""Several scenarios at once (``celery-chaos run --jobs N``).

Each scenario already has its own everything: ledger and broker servers on their own ports,
workers, cgroups, run state file, watchdog and report folder. So scenarios run in a pool of
threads of the harness process, and what keeps "nothing outlives the harness" true stays the
same as for a sequential run:

- a process started from a pool thread gets ``PR_SET_PDEATHSIG`` as if the main thread started
  it (:func:`processes.children_die_with_this_thread`): a pool thread lives until the pool shuts
  down, after every scenario it ran has stopped what it started; a SIGKILL of the harness kills
  every thread, so the kernel kills their processes, and each run's watchdog removes the rest;
- Ctrl-C and SIGTERM reach the main thread only: it sets ``options.stop``, every running
  scenario raises :class:`Interrupted` at its next loop pass and closes its backend on the way
  out, the main thread waits for all of them, then re-raises (exit 130).

Output stays readable: a scenario's lines are kept and given to ``log`` (then its result to
``on_result``) in suite order, once every earlier scenario's are out, so ``--jobs 4`` prints what
a sequential run prints. ``exclusive`` scenarios (timing-sensitive under load) run alone, first;
the others start longest first: by the seconds each took in the report folder's previous run,
else by ``timeout`` (a long scenario started last would stretch the suite's wall time). With
``--jobs auto`` each one starts only when :mod:`admission` finds room on the machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from celery_chaos.core.conclusion import ScenarioResult
from celery_chaos.core.scenario import Scenario
from celery_chaos.placements.local.processes import children_die_with_this_thread
from celery_chaos.report.mask import mask_text
from celery_chaos.run.admission import Admission
from celery_chaos.run.loop import Interrupted

Progress = Callable[[str, str | None], None]
WAKE = 0.2  # the main thread wakes this often: Ctrl-C is handled between waits


class InOrder:
    """Hands each scenario's kept lines and result on in suite order."""

    def __init__(self, scenarios: list[Scenario], log: Callable[[str], None], on_result: object):
        self.names = [s.name for s in scenarios]
        self.lines: dict[str, list[str]] = {name: [] for name in self.names}
        self.done: dict[str, ScenarioResult] = {}
        self.log, self.on_result = log, on_result
        self.next = 0

    def emit_ready(self) -> None:
        while self.next < len(self.names) and self.names[self.next] in self.done:
            name = self.names[self.next]
            for line in self.lines[name]:
                self.log(line)
            if callable(self.on_result):
                self.on_result(self.done[name])
            self.next += 1


def _logger(name: str, kept: list[str], on_progress: Progress | None) -> Callable[[str], None]:
    def log(line: str) -> None:
        kept.append(line)
        if on_progress is not None:
            on_progress(name, mask_text(line))

    return log


def run_parallel(
    scenarios: list[Scenario],
    run_one: Callable[[Scenario, Callable[[str], None]], ScenarioResult],
    jobs: int,
    stop: threading.Event,
    log: Callable[[str], None],
    on_result: Callable[[ScenarioResult], None] | None,
    on_progress: Progress | None,
    admission: Admission | None = None,
    expected_seconds: dict[str, float] | None = None,
) -> list[ScenarioResult]:
    """Run ``scenarios`` with ``run_one(scenario, log)`` (``exclusive`` ones alone, first; the
    others ``jobs`` at a time, each started only when ``admission`` finds room, if given; the
    longest by ``expected_seconds``, else by ``timeout``, first) and return their results in
    suite order."""
    order = InOrder(scenarios, log, on_result)

    def one(scenario: Scenario) -> ScenarioResult:
        log_one = _logger(scenario.name, order.lines[scenario.name], on_progress)
        try:
            return run_one(scenario, log_one)
        finally:
            if on_progress is not None:
                on_progress(scenario.name, None)

    expected = expected_seconds or {}
    batches = [[s] for s in scenarios if s.exclusive]
    batches.append([s for s in scenarios if not s.exclusive])
    with ThreadPoolExecutor(jobs, "scenario", children_die_with_this_thread) as pool:
        try:
            for batch in batches:
                longest_first = sorted(batch, key=lambda s: -expected.get(s.name, s.timeout))
                _run_batch(pool, one, longest_first, order, admission)
        except KeyboardInterrupt:
            stop.set()  # every scenario stops at its next pass; the pool waits for them
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [order.done[name] for name in order.names]


def _run_batch(
    pool: ThreadPoolExecutor,
    one: Callable[[Scenario], ScenarioResult],
    batch: list[Scenario],
    order: InOrder,
    admission: Admission | None,
) -> None:
    """Submit ``batch`` in its order (each scenario once ``admission`` finds room) and wait for
    it, handing results on in suite order as they come."""
    pending = list(batch)
    running: dict[Future, str] = {}
    while running or pending:
        while pending and (admission is None or admission.room(len(running))):
            scenario = pending.pop(0)
            running[pool.submit(one, scenario)] = scenario.name
            if admission is not None:
                admission.started()
        finished, _ = wait(running, timeout=WAKE, return_when=FIRST_COMPLETED)
        for future in finished:
            name = running.pop(future)
            error = future.exception()
            if isinstance(error, Interrupted):
                raise KeyboardInterrupt(str(error))
            if error is not None:
                raise error
            order.done[name] = future.result()
        order.emit_ready()


__all__ = ["run_parallel"]
