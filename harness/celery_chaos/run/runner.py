"""Runs scenarios: provision (backend), then the run loop (dispatch, inject, observe), then check
(checker), compare (expectations), conclude (status) and write (report).

A run ends at *quiescence* (everything dispatched, every fault fired, no attempt running and no
message of ours left in the broker, stable for ``settle`` seconds: nothing more can happen) or at
the scenario's ``timeout``. Then the workers are frozen and the broker is inspected, so the final
state the checker sees cannot move under it; then they are killed and the history is read once
the ledger holds every event they sent (``run.barrier``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from celery_chaos.agent.instrument import ASYNC_WRITES
from celery_chaos.core import history as h
from celery_chaos.core.app_state import AppState
from celery_chaos.core.checker import check
from celery_chaos.core.conclusion import (
    ERROR,
    NOT_RUNNABLE,
    SKIPPED,
    ScenarioResult,
    SuiteResult,
    conclude,
    unproven_faults,
)
from celery_chaos.core.distribution import redelivery_distribution
from celery_chaos.core.expectations import evaluate, expected_for, unclaimed
from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_base import CONDITION_KEYS
from celery_chaos.placements import (
    BackendError,
    MissingExtra,
    Placement,
    Unsupported,
    make_placement,
    shared_by_suite,
)
from celery_chaos.report import files as report
from celery_chaos.report.mask import mask_text
from celery_chaos.run import app_state, barrier, results_state, setup, storm, versions, workload
from celery_chaos.run.admission import Admission
from celery_chaos.run.loop import Loop, Snapshot, end_reason, pick_seed
from celery_chaos.run.parallel import run_parallel


@dataclass
class RunOptions:
    backend: str = "local"
    report_dir: Path = Path("reports")
    seed: int | None = None
    verbose: bool = False
    backend_options: dict[str, Any] = field(default_factory=dict)
    # Called with the backend after the run, workers stopped (frozen, then killed by the barrier
    # when the agent writes fire-and-forget: run.barrier), before teardown (repro probes).
    on_finish: Callable[[Placement], None] | None = None
    jobs: int = 1  # scenarios run at once (``exclusive`` ones always alone)
    # ``--jobs auto``: ``jobs`` is only a cap; a scenario starts when the machine has room.
    adaptive: bool = False
    # Seconds each scenario took in the report folder's previous run (``latest``): the parallel
    # runner starts the longest first, so the suite's wall time is not one long scenario started
    # last. A scenario without a record counts as long as its ``timeout``.
    expected_seconds: dict[str, float] = field(default_factory=dict)
    # Set when the suite is interrupted: scenarios in helper threads stop at their next pass.
    stop: threading.Event = field(default_factory=threading.Event)
    strict: bool = False  # every scenario strict (``--strict``), as if each said ``strict: true``
    # A scenario whose optional extra is missing is not_runnable (exit 2), not skipped.
    require_all: bool = False


def _drive(
    scenario: Scenario,
    backend: Placement,
    result: ScenarioResult,
    options: RunOptions,
    log: Any,
    started: list[h.Event],
) -> tuple[Snapshot, AppState]:
    """The loop over one started environment (``started``: its history so far, the workers'
    ready events): schedule, workload, faults, then the snapshot and the app's state (read once
    the workers are stopped)."""
    assert backend.ledger is not None
    on_event = (lambda e: log(report.describe_event(e))) if options.verbose else None
    plan = workload.plan(scenario)
    loop = Loop(backend, backend.ledger, plan, scenario.faults, result.seed, log, on_event)
    result.schedule = loop.nemesis.schedule
    sampler = app_state.Sampler(backend, scenario, lambda: loop.task_ids)
    for line in result.schedule:
        log(f"   schedule: {line}")
    for line in results_state.describe(started):
        log(f"   {line}")  # which result backend the workers use, when they have one
    client = workload.make_client(
        backend.broker.url, backend.broker.celery_settings(scenario.celery), backend.results_url()
    )
    try:
        loop.nemesis.arm()
        sampler.start()  # the ``during`` invariants, while faults are active
        quiet = loop.wait(
            scenario.timeout, scenario.settle, client=client, stop=options.stop, end_on_loops=True
        )
        result.end_reason = end_reason(quiet, loop.ended_on_loop)
        result.timings["workload"] = round(loop.now(), 3)
        result.timings["settle"] = round(loop.settled_in, 3)
        frozen = time.monotonic()
        loop.stop_faults()
        samples = sampler.stop()
        backend.freeze()
        backend.ledger.record(h.RUN_END, reason=result.end_reason)
        client.close()  # before the snapshot: a RabbitMQ inspection closes every connection
        snapshot = loop.snapshot(barrier=_barrier(backend))
        result.timings["freeze_inspect"] = round(time.monotonic() - frozen, 3)
        read_at = time.monotonic()
        state = AppState(
            app_state.collect(backend, scenario, snapshot[0], samples),
            *results_state.read_result_states(backend, snapshot[0]),
        )
        result.timings["app_state"] = round(time.monotonic() - read_at, 3)
        return snapshot, state
    finally:
        sampler.stop()
        client.close()


def _barrier(backend: Placement) -> Callable[[], object] | None:
    """What proves every event is in before the history is read: with fire-and-forget agent
    writes, the frozen workers are killed and their ledger connections awaited (run.barrier)."""
    if backend.agent_writes != ASYNC_WRITES:
        return None
    return lambda: barrier.kill_workers_and_wait(backend)


def expectation_context(result: ScenarioResult) -> dict[str, str | None]:
    """What ``expect_when`` conditions are decided on: the broker kind and library versions."""
    versions = {key: result.versions.get(key) for key in CONDITION_KEYS if key != "broker"}
    return {"broker": result.scenario.broker.kind, **versions}


def _conclude(result: ScenarioResult, snapshot: Snapshot, state: AppState | None = None) -> None:
    """Checker, expectations, status. Raises only what the caller turns into ``error``."""
    history, broker_state, held = snapshot
    checked = time.monotonic()
    threshold = result.scenario.redelivery_threshold
    result.verdicts = check(history, broker_state, held, threshold, app_state=state)
    result.timings["checker"] = round(time.monotonic() - checked, 4)
    expect = expected_for(result.scenario, expectation_context(result))
    result.expectations = evaluate(expect, result.verdicts.counts)
    result.unclaimed = unclaimed(expect, result.verdicts.counts)
    drawn = range(len(result.scenario.faults)) if result.scenario.storm is not None else ()
    conclude(result, unproven_faults(history, drawn))


def _execute(result: ScenarioResult, options: RunOptions, log: Any) -> list[h.Event]:
    """Provision, drive, conclude; every failure becomes this scenario's status and reason."""
    scenario, history, began = result.scenario, [], time.monotonic()
    try:
        backend = make_placement(
            options.backend, scenario, result.report_dir, log=log, **options.backend_options
        )
        backend.check_runnable()
        if scenario.setup:  # between the services and the workers (run.setup)
            backend.before_workers = partial(setup.run_steps, backend, scenario.setup)
        with backend:
            backend.start()
            result.timings["environment_ready"] = round(time.monotonic() - began, 3)
            result.versions |= versions.broker_version(backend)
            assert backend.ledger is not None
            started = backend.ledger.read_all()  # read once: the workers' versions and backend
            result.versions |= versions.worker_versions(started)
            too_old = versions.needs_newer(scenario, expectation_context(result))
            if too_old is not None:  # the workers' Celery would ignore it: not this scenario
                raise Unsupported(too_old)
            snapshot, state = _drive(scenario, backend, result, options, log, started)
            history = snapshot[0]
            if options.on_finish is not None:
                options.on_finish(backend)
            closing = time.monotonic()
        result.timings["teardown"] = round(time.monotonic() - closing, 3)
        _conclude(result, snapshot, state)
    except MissingExtra as error:  # before Unsupported, which it is
        result.status = NOT_RUNNABLE if options.require_all else SKIPPED
        result.reason = str(error)
    except Unsupported as error:
        result.status, result.reason = NOT_RUNNABLE, str(error)
    except BackendError as error:
        result.status, result.reason = ERROR, str(error)
    except Exception as error:  # the checker or a probe raised: this scenario's error only
        result.status, result.reason = ERROR, f"{type(error).__name__}: {error}"
    result.timings["total"] = round(time.monotonic() - began, 3)
    return history


def run_scenario(
    scenario: Scenario, options: RunOptions, run_root: Path, log: Callable[[str], None] = print
) -> ScenarioResult:
    """Run one scenario end to end and write its report folder."""
    seed = pick_seed(scenario.seed, options.seed)
    scenario = storm.expand(scenario, seed)  # a storm becomes a fixed schedule drawn from seed
    result = ScenarioResult(scenario, ERROR, seed, options.backend, run_root / scenario.name)
    result.strict = options.strict if scenario.strict is None else scenario.strict
    result.versions = versions.library_versions()
    log(f"== {scenario.name} (backend {options.backend}, seed {seed})")
    history = _execute(result, options, lambda line: log(mask_text(line)))
    if scenario.storm is not None and result.verdicts is not None:
        latency = redelivery_distribution(result.verdicts.tasks)
        log(f"   storm totals: {result.verdicts.totals()}; redelivery latency (s): {latency}")
    try:
        report.write_scenario(result, history)
    except Exception as error:  # a report that cannot be written is this scenario's error
        result.status, result.reason = ERROR, f"report: {type(error).__name__}: {error}"
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
    on_progress: Callable[[str, str | None], None] | None = None,
) -> SuiteResult:
    """Run scenarios into one timestamped report folder: one after another, or with
    ``options.jobs`` > 1 several at once (:mod:`parallel`). Either way each scenario's lines and
    result come out in suite order; ``on_progress(name, line)`` hears each running scenario's
    latest line as it happens (``line`` None: it finished)."""
    run_dir = new_run_dir(options.report_dir)
    with shared_by_suite(options.backend, scenarios) as shared:
        # the caller's own options win: {"shared_rabbitmq": None} gives each scenario its node
        run_with = replace(options, backend_options=shared | options.backend_options)
        results = _run_all(scenarios, run_with, run_dir, log, on_result, on_progress)
    suite = SuiteResult(results, run_dir)
    report.write_suite(suite)
    return suite


def _run_all(
    scenarios: list[Scenario],
    options: RunOptions,
    run_dir: Path,
    log: Callable[[str], None],
    on_result: Callable[[ScenarioResult], None] | None,
    on_progress: Callable[[str, str | None], None] | None,
) -> list[ScenarioResult]:
    """One after another, or ``options.jobs`` at once; results in suite order."""
    if options.jobs > 1:

        def run_one(scenario: Scenario, log_one: Callable[[str], None]) -> ScenarioResult:
            return run_scenario(scenario, options, run_dir, log_one)

        admission = Admission(options.jobs) if options.adaptive else None
        return run_parallel(
            scenarios, run_one, options.jobs, options.stop, log, on_result, on_progress,
            admission, options.expected_seconds,
        )  # fmt: skip
    results = []
    for scenario in scenarios:
        results.append(run_scenario(scenario, options, run_dir, log))
        if on_result is not None:
            on_result(results[-1])
    return results
