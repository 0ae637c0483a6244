"""Running a repro: import the app, run the scenario, read its invariants, judge, report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery_chaos.core.conclusion import (
    ERROR,
    FAILED,
    NOT_RUNNABLE,
    SKIPPED,
    ScenarioResult,
    SuiteResult,
)
from celery_chaos.placements import Placement
from celery_chaos.report.mask import mask_report
from celery_chaos.run import runner
from celery_chaos.run.runner import RunOptions
from celery_chaos.tools.repro.app import broker_choice, build_scenario, inspect_app, results_choice
from celery_chaos.tools.repro.probes import broken, judged_by_run, snapshot_probes
from celery_chaos.tools.repro.spec import EXIT_OK, EXIT_UNSAFE, EXIT_UNUSABLE, ReproSpec
from celery_chaos.tools.repro.verdict import (
    Verdict,
    explain_with_app_settings,
    settings_lines,
    verdict_of,
)

BROKER_NAMES = {"redis": "Redis", "rabbitmq": "RabbitMQ"}


@dataclass
class ReproRun:
    result: ScenarioResult
    verdict: Verdict
    probes: list[dict[str, Any]]  # the repro file's invariants, judged (see probes.py)
    settings: list[str]
    run_dir: Path
    results: str = ""  # which result backend the workers used (the first line says it too)

    @property
    def exit_code(self) -> int:
        if self.verdict.exit_code == EXIT_OK and broken(self.probes):
            return EXIT_UNSAFE
        return self.verdict.exit_code


def align_status(trial: ReproRun) -> None:
    """Make the scenario status (junit, summary.md) say what the exit code says."""
    result, verdict = trial.result, trial.verdict
    if verdict.exit_code == EXIT_UNUSABLE and result.status == SKIPPED:
        # A missing extra (gevent/eventlet): the user asked for that pool, so it is not
        # runnable here, with the install hint as its reason; the environment did not break.
        result.status = NOT_RUNNABLE
    elif verdict.exit_code == EXIT_UNUSABLE and result.status not in (NOT_RUNNABLE, ERROR):
        result.status, result.reason = ERROR, verdict.headline
    elif trial.exit_code == EXIT_UNSAFE and result.status != FAILED:
        held = [f"{p['name']} = {p.get('summary')}" for p in broken(trial.probes)]
        result.status, result.reason = FAILED, "invariant broken: " + "; ".join(held)


def _write(trial: ReproRun, spec: ReproSpec) -> None:
    """Add the verdict and the probes to result.json, and write the run's junit/summary."""
    align_status(trial)
    path = trial.result.report_dir / "result.json"
    document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    document["status"], document["reason"] = trial.result.status, trial.result.reason
    verdict = trial.verdict
    document["repro"] = {
        "app": spec.app,
        "task": spec.task,
        "fault": spec.fault,
        "at": spec.at,
        "broker": trial.result.scenario.broker.kind,
        "overrides": spec.celery,
        "verdict": verdict.code,
        "headline": verdict.headline,
        "reasons": verdict.reasons,
        "settings": trial.settings,
        "exit_code": trial.exit_code,
        "results": trial.results,
    }
    document["probes"] = trial.probes
    document["explanations"] = trial.result.explanations
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mask_report(document), indent=2, default=str), encoding="utf-8")
    from celery_chaos.report import files as report
    from celery_chaos.report import html

    # report.html again, now that result.json holds the verdict, the settings and the probes
    report._write_html(html.write_scenario_html, trial.result.report_dir)
    report.write_suite(SuiteResult([trial.result], trial.run_dir))


def run_repro(
    spec: ReproSpec,
    options: RunOptions,
    cwd: Path,
    log: Callable[[str], None] = print,
    keep_app_results: bool = False,
) -> ReproRun:
    """Import the app, build the scenario, run it, read the probes, judge, write the report.
    The first line says which broker and which result backend the workers use."""
    view = inspect_app(spec, cwd, options.backend_options.get("python"))
    broker, why = broker_choice(spec, view)
    results, results_line = results_choice(spec, view, keep_app_results)
    log(f"broker: a private {BROKER_NAMES[broker]} started for this repro ({why}); {results_line}")
    scenario = build_scenario(spec, view.queue, view.workload, broker, results)
    if options.backend == "local":
        options.backend_options.setdefault("cwd", cwd)
    run_dir = runner.new_run_dir(options.report_dir)
    probes: list[dict[str, Any]] = []

    def snapshot(backend: Placement) -> None:
        probes.extend(snapshot_probes(spec, backend))

    options.on_finish = snapshot
    result = runner.run_scenario(scenario, options, run_dir, log)
    explain_with_app_settings(result, view)
    judged = judged_by_run(result) + probes
    verdict = verdict_of(result, spec, view)
    settings = settings_lines(view, spec.celery)
    trial = ReproRun(result, verdict, judged, settings, run_dir, results_line)
    _write(trial, spec)
    return trial
