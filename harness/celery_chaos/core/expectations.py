"""Comparing verdict counts with what a scenario expects. Kept apart from the checker on purpose:
the checker never sees expectations, so a verdict can never be bent to fit one."""

from __future__ import annotations

from dataclasses import dataclass

from celery_chaos.core.scenario import Range


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


def evaluate(expect: dict[str, int | Range], counts: dict[str, int]) -> list[ExpectationResult]:
    """One result per expected verdict, in the scenario's order."""
    results = []
    for verdict, rule in expect.items():
        low, high, text = _wanted(rule)
        actual = counts.get(verdict, 0)
        met = (low is None or actual >= low) and (high is None or actual <= high)
        results.append(ExpectationResult(verdict, text, actual, met))
    return results
