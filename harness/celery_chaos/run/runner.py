"""Runs scenarios: provision (backend), dispatch (workload), inject (nemesis), observe (watcher),
then judge (checker), compare (expectations) and write (report).

A run ends at *quiescence* (everything dispatched, every fault fired, no attempt running and no
message of ours left in the broker, stable for ``settle`` seconds: nothing more can happen) or at
the scenario's ``timeout``. Then the workers are frozen and the broker is inspected, so the final
state the checker sees cannot move under it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from celery_chaos.backends import Backend, BackendError, Unsupported, make_backend
from celery_chaos.core import history as h
from celery_chaos.core.checker import BrokerState, Verdicts, check
from celery_chaos.core.expectations import ExpectationResult, evaluate
from celery_chaos.core.scenario import Scenario
from celery_chaos.report import files as report
from celery_chaos.run import workload
from celery_chaos.run.nemesis import Nemesis
from celery_chaos.run.watcher import Watcher

POLL_INTERVAL = 0.01

PASSED, FAILED, NOT_RUNNABLE, ERROR = "passed", "failed", "not_runnable", "error"


@dataclass
class QuietWindow:
    """Quiescence must hold without a break for ``settle`` seconds before a run may end: a
    message can be in flight between the broker and a worker for a moment."""

    settle: float
    since: float | None = None

    def held(self, quiet: bool, now: float) -> bool:
        if not quiet:
            self.since = None
            return False
        self.since = now if self.since is None else self.since
        return now - self.since >= self.settle


@dataclass
class RunOptions:
    backend: str = "local"
    report_dir: Path = Path("reports")
    seed: int | None = None
    verbose: bool = False
    backend_options: dict[str, Any] = field(default_factory=dict)
    # Called with the backend after the run, workers frozen, before teardown (repro probes).
    on_finish: Callable[[Backend], None] | None = None


@dataclass
class ScenarioResult:
    scenario: Scenario
    status: str
    seed: int
    backend: str
    report_dir: Path
    reason: str = ""
    end_reason: str = ""
    verdicts: Verdicts | None = None
    expectations: list[ExpectationResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    schedule: list[str] = field(default_factory=list)

    @property
    def unmet(self) -> list[ExpectationResult]:
        return [e for e in self.expectations if not e.met]


@dataclass
class SuiteResult:
    results: list[ScenarioResult]
    run_dir: Path

    @property
    def exit_code(self) -> int:
        """0 all met, 1 an expectation failed, 2 a scenario could not run here."""
        statuses = {r.status for r in self.results}
        if FAILED in statuses:
            return 1
        return 2 if statuses & {NOT_RUNNABLE, ERROR} else 0


class _Run:
    """The state of one scenario while it runs."""

    def __init__(
        self,
        scenario: Scenario,
        backend: Backend,
        seed: int,
        log: Callable[[str], None],
        verbose: bool,
    ):
        assert backend.ledger is not None
        self.scenario = scenario
        self.backend = backend
        self.ledger = backend.ledger
        self.log = log
        self.verbose = verbose
        self.dispatches = workload.plan(scenario)
        self.task_ids = {d.task_id for d in self.dispatches}
        lost_wait = float(scenario.celery.get("worker_lost_wait", 10.0))
        self.watcher = Watcher(backend, self.ledger, worker_lost_wait=lost_wait)
        self.nemesis = Nemesis(
            scenario.faults, self.dispatches, backend, self.ledger, self.watcher, seed, log
        )
        self.client = workload.make_client(backend.broker_url, scenario.celery)

    def _quiet(self) -> bool:
        settled = (
            all(d.sent for d in self.dispatches) and self.nemesis.done and self.watcher.settled()
        )
        return settled and not self.backend.broker_state().may_hold(self.task_ids)

    def drive(self) -> str:
        """Dispatch, inject and watch until quiescence or the deadline; returns which."""
        self.nemesis.arm()
        start = time.monotonic()
        window = QuietWindow(self.scenario.settle)
        while True:
            now = time.monotonic() - start
            for dispatch in self.dispatches:
                if not dispatch.sent and now >= dispatch.at:
                    workload.send(self.client, self.ledger, dispatch)
            for event in self.ledger.poll():
                self.watcher.observe(event)
                self.nemesis.observe(event, now)
                if self.verbose:
                    self.log(report.describe_event(event))
            self.watcher.check()
            self.nemesis.tick(now)
            if window.held(self._quiet(), now):
                return "quiescent"
            if now >= self.scenario.timeout:
                return "deadline"
            time.sleep(POLL_INTERVAL)

    def finish(self, end_reason: str) -> tuple[list[h.Event], BrokerState, dict[str, str]]:
        """Freeze the workers, then read the final broker state, locks and history."""
        self.nemesis.release_all()
        self.backend.freeze()
        broker_state = self.backend.broker_state()
        held = self.ledger.held_locks()
        self.ledger.record(h.RUN_END, reason=end_reason)
        self.client.close()
        return self.ledger.read_all(), broker_state, held


def _seed_for(scenario: Scenario, options: RunOptions) -> int:
    if scenario.seed is not None:
        return scenario.seed
    if options.seed is not None:
        return options.seed
    return random.SystemRandom().randrange(2**31)


def run_scenario(
    scenario: Scenario, options: RunOptions, run_root: Path, log: Callable[[str], None] = print
) -> ScenarioResult:
    """Run one scenario end to end and write its report folder."""
    seed = _seed_for(scenario, options)
    result = ScenarioResult(scenario, ERROR, seed, options.backend, run_root / scenario.name)
    log(f"== {scenario.name} (backend {options.backend}, seed {seed})")
    try:
        backend = make_backend(
            options.backend, scenario, result.report_dir, log=log, **options.backend_options
        )
        backend.check_runnable()
    except Unsupported as error:
        result.status, result.reason = NOT_RUNNABLE, str(error)
        report.write_scenario(result, [])
        return result
    history: list[h.Event] = []
    began = time.monotonic()
    try:
        with backend:
            backend.start()
            result.timings["environment_ready"] = round(time.monotonic() - began, 3)
            run = _Run(scenario, backend, seed, log, options.verbose)
            result.schedule = run.nemesis.schedule
            for line in result.schedule:
                log(f"   schedule: {line}")
            started = time.monotonic()
            result.end_reason = run.drive()
            result.timings["workload"] = round(time.monotonic() - started, 3)
            history, broker_state, held = run.finish(result.end_reason)
            if options.on_finish is not None:
                options.on_finish(backend)
    except Unsupported as error:
        result.status, result.reason = NOT_RUNNABLE, str(error)
    except BackendError as error:
        result.status, result.reason = ERROR, str(error)
    else:
        checked = time.monotonic()
        result.verdicts = check(history, broker_state, held, scenario.redelivery_threshold)
        result.timings["checker"] = round(time.monotonic() - checked, 4)
        result.expectations = evaluate(scenario.expect, result.verdicts.counts)
        result.status = FAILED if result.unmet else PASSED
    result.timings["total"] = round(time.monotonic() - began, 3)
    report.write_scenario(result, history)
    return result


def new_run_dir(report_dir: Path) -> Path:
    """``report_dir/<timestamp>``, unique even when parallel runs start in the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for suffix in ["", *(f"-{i}" for i in range(1, 1000))]:
        candidate = report_dir / f"{stamp}{suffix}"
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise BackendError(f"{report_dir}: cannot create a run folder")


def run_suite(
    scenarios: list[Scenario],
    options: RunOptions,
    log: Callable[[str], None] = print,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> SuiteResult:
    """Run scenarios one after another into one timestamped report folder."""
    run_dir = new_run_dir(options.report_dir)
    results = []
    for scenario in scenarios:
        results.append(run_scenario(scenario, options, run_dir, log))
        if on_result is not None:
            on_result(results[-1])
    suite = SuiteResult(results, run_dir)
    report.write_suite(suite)
    return suite
