"""What a run concluded: one status per scenario, the suite's exit code, and why.

Statuses, from the history and the expectations only:

- ``passed``: every fault fired and every expectation was met.
- ``failed``: an expectation was not met, every fault fired; or the run is *strict* (the
  scenario's ``strict: true``; ``run --strict``/``--chaos-strict`` unless it says ``strict:
  false``) and an anomaly verdict (:data:`celery_chaos.core.expectations.ANOMALIES`) is non-zero
  without being named in the expectations that apply: a finding nobody claimed is never a pass.
- ``inconclusive``: a fault was ``missed`` (nothing to hit) or an ``injection_error`` (its
  primitive raised):
  the run did not test what the scenario claims, whatever the verdicts say.
- ``not_runnable``: this backend/host cannot inject a fault of the scenario.
- ``skipped``: the scenario needs an optional extra that is not installed (a gevent/eventlet
  pool): the hint says what to install. It does not fail the suite unless ``--require-all``
  asked for every scenario to run (then it is ``not_runnable``).
- ``error``: the environment broke, or the checker or the report raised.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.checker import Verdicts
from celery_chaos.core.expectations import ExpectationResult
from celery_chaos.core.scenario import Scenario
from celery_chaos.faults.base import INJECTION_ERROR, MISSED

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"
NOT_RUNNABLE, ERROR, SKIPPED = "not_runnable", "error", "skipped"
STATUSES = (PASSED, FAILED, INCONCLUSIVE, NOT_RUNNABLE, ERROR, SKIPPED)

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# The suite's exit code is the first of these any scenario has (1 before 3 before 2); ``passed``
# and ``skipped`` exit 0.
EXIT_PRECEDENCE = (
    (FAILED, EXIT_FAILED),
    (INCONCLUSIVE, EXIT_INCONCLUSIVE),
    (NOT_RUNNABLE, EXIT_UNUSABLE),
    (ERROR, EXIT_UNUSABLE),
)


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
    versions: dict[str, Any] = field(default_factory=dict)
    # core.explain's lines: why each finding happened (report.explained.fill sets them)
    explanations: list[str] = field(default_factory=list)
    strict: bool = False  # an unclaimed anomaly verdict fails the run
    unclaimed: list[str] = field(default_factory=list)  # anomaly verdicts expect does not name

    @property
    def unmet(self) -> list[ExpectationResult]:
        return [e for e in self.expectations if not e.met]


@dataclass
class SuiteResult:
    results: list[ScenarioResult]
    run_dir: Path

    @property
    def exit_code(self) -> int:
        """0 all passed; else the code of the first status in :data:`EXIT_PRECEDENCE` seen."""
        statuses = {r.status for r in self.results}
        return next((code for status, code in EXIT_PRECEDENCE if status in statuses), EXIT_OK)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.status == PASSED)

    @property
    def skipped(self) -> list[ScenarioResult]:
        return [r for r in self.results if r.status == SKIPPED]


def unproven_faults(history: list[h.Event], drawn: Collection[int] = ()) -> list[str]:
    """One line per fault that did not do what the scenario says (``missed`` or
    ``injection_error``).

    ``drawn``: indexes of faults a storm drew at random times; one of them ``missed`` (a
    ``kill_child`` drawn while no task ran) is the drizzle missing, not an unproven claim.
    A drawn fault with an ``injection_error`` still counts."""
    return [
        f"fault {e.get('fault')} ({e.get('kind')}) {e.get('status')}: {e.get('detail')}"
        for e in history
        if e["type"] == h.FAULT
        and (
            e.get("status") == INJECTION_ERROR
            or (e.get("status") == MISSED and e.get("fault") not in drawn)
        )
    ]


def unmet_line(verdicts: Verdicts | None, unmet: ExpectationResult) -> str:
    """One unmet expectation, naming its offending tasks/locks/effects."""
    line = f"{unmet.verdict}: expected {unmet.wanted}, got {unmet.actual}"
    offenders = verdicts.offenders(unmet.verdict) if verdicts else []
    return line + (" (" + ", ".join(offenders[:10]) + ")" if offenders else "")


def unclaimed_line(verdicts: Verdicts | None, verdict: str) -> str:
    """One unclaimed anomaly verdict, e.g. ``unclaimed: stuck_locks = 1 (lock doc:7 ...)``."""
    offenders = verdicts.offenders(verdict) if verdicts else []
    count = verdicts.counts.get(verdict, 0) if verdicts else 0
    listed = " (" + ", ".join(offenders[:10]) + ")" if offenders else ""
    return f"unclaimed: {verdict} = {count}{listed}"


def unmet_text(result: ScenarioResult) -> str:
    """Every unmet expectation of ``result`` on one line (and, when the run is strict, every
    unclaimed anomaly verdict), then what the broker showed about why (e.g. that no worker
    could restore a message yet)."""
    lines = [unmet_line(result.verdicts, unmet) for unmet in result.unmet]
    if result.strict:
        lines += [unclaimed_line(result.verdicts, verdict) for verdict in result.unclaimed]
    notes = result.verdicts.broker_notes if result.verdicts and lines else []
    return "; ".join(lines + [f"broker: {note}" for note in notes])


def conclude(result: ScenarioResult, unproven: list[str]) -> None:
    """Set ``status``/``reason`` once verdicts and expectations are known. A fault that did not
    land makes the run inconclusive even when expectations are unmet: the verdicts then say
    nothing about the fault the scenario is about. A strict run with an unclaimed anomaly
    verdict fails like an unmet expectation."""
    if unproven:
        result.status = INCONCLUSIVE
        unmet = unmet_text(result)
        result.reason = "; ".join(unproven) + (f"; also unmet: {unmet}" if unmet else "")
    else:
        unclaimed = result.strict and bool(result.unclaimed)
        result.status = FAILED if result.unmet or unclaimed else PASSED
        # An unclaimed finding is not an expectation, so only the reason can carry it to
        # every report (result.json, report.html, index.html read ``reason``).
        result.reason = unmet_text(result) if unclaimed else ""


def failure_message(result: ScenarioResult) -> str:
    """Why a scenario did not pass, in one line (junit, summary, console, pytest)."""
    return result.reason or unmet_text(result)
