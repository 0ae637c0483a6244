"""Comparing verdict counts with what a scenario expects. Kept apart from the checker on purpose:
the checker never sees expectations, so a verdict can never be bent to fit one."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_base import Range
from celery_chaos.core.verdicts import FINDINGS, VERDICTS
from celery_chaos.core.workflows import WORKFLOW_VERDICTS

# The verdicts that say something went wrong (README: Strict). A scenario run strict must name
# each of them that is non-zero in its expectations, so no finding passes unclaimed. Not
# anomalies: ``ok``, ``recovered`` (redelivered and completed once: what surviving a fault
# looks like), ``retried`` (the task asked to run again), ``revoked`` (the harness revoked it on
# purpose) and ``workflow_completed``.
ANOMALIES: tuple[str, ...] = (
    "lost",
    "pending",
    "dead_lettered",
    "duplicate_executions",
    "failed",
    "redelivery_loop",
    "dropped_at_delivery_limit",
    *FINDINGS,
    *(v for v in WORKFLOW_VERDICTS if v != "workflow_completed"),
)
assert set(ANOMALIES) <= set(VERDICTS)


@dataclass
class ExpectationResult:
    verdict: str
    wanted: str
    actual: int
    met: bool


def _wanted(rule: int | Range) -> tuple[int | None, int | None, str]:
    if isinstance(rule, int):
        return rule, rule, f"== {rule}"
    parts = [
        f">= {rule.min}" if rule.min is not None else "",
        f"<= {rule.max}" if rule.max is not None else "",
    ]
    return rule.min, rule.max, " and ".join(p for p in parts if p) or "any"


def _holds(key: str, wanted: str, context: dict[str, str | None]) -> bool:
    actual = context.get(key)
    if actual is None:
        return False  # a condition about something unknown never applies
    if key == "broker":
        return actual == wanted
    try:
        return Version(actual) in SpecifierSet(wanted)
    except InvalidVersion:
        return False


def expected_for(scenario: Scenario, context: dict[str, str | None]) -> dict[str, int | Range]:
    """The scenario's ``expect`` with every matching ``expect_when`` entry applied on top, in
    file order (and ``invariant_violations: 0`` when the scenario has invariants and names no
    rule for it). ``context`` says what the run used: ``broker`` (kind) and library versions
    (``celery``, ``kombu``, ``billiard``, ``redis-py``) as the workers ran them."""
    expect = dict(scenario.expect)
    for rule in scenario.expect_when:
        if all(_holds(key, wanted, context) for key, wanted in rule.when.items()):
            expect |= rule.expect
    if scenario.invariants and "invariant_violations" not in expect:
        # An invariant states its own expectation: one that broke fails the run even when
        # ``expect`` does not name the verdict (naming it, e.g. {min: 1}, claims a break).
        expect["invariant_violations"] = 0
    return expect


def evaluate(expect: dict[str, int | Range], counts: dict[str, int]) -> list[ExpectationResult]:
    """One result per expected verdict, in the scenario's order."""
    results = []
    for verdict, rule in expect.items():
        low, high, text = _wanted(rule)
        actual = counts.get(verdict, 0)
        met = (low is None or actual >= low) and (high is None or actual <= high)
        results.append(ExpectationResult(verdict, text, actual, met))
    return results


def unclaimed(expect: dict[str, int | Range], counts: dict[str, int]) -> list[str]:
    """The anomaly verdicts that are non-zero although ``expect`` (the expectations that apply
    to this run, :func:`expected_for`) does not name them, in vocabulary order."""
    return [v for v in ANOMALIES if counts.get(v, 0) > 0 and v not in expect]
