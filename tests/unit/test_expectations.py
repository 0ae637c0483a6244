"""Expectations (core/expectations.py): exact and ranged rules against the verdict counts, and
``expect_when`` for expectations that legitimately differ by broker or library version."""

from __future__ import annotations

import pytest
from celery_chaos.core.expectations import evaluate, expected_for
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_base import Range, ScenarioError

BASE = {
    "name": "s",
    "description": "d",
    "workload": [{"task": "sample_tasks.tasks.work"}],
    "expect": {"lost": 0, "pending": 1},
}


def scenario(*rules: dict) -> object:
    return parse_scenario(BASE | {"expect_when": list(rules)}, "inline")


def test_a_matching_rule_replaces_only_the_verdicts_it_names() -> None:
    rule = {"when": {"broker": "redis", "celery": "<5.5"}, "expect": {"lost": 1}, "why": "#123"}
    chosen = expected_for(scenario(rule), {"broker": "redis", "celery": "5.4.0"})
    assert chosen == {"lost": 1, "pending": 1}
    assert [r.met for r in evaluate(chosen, {"lost": 1, "pending": 1})] == [True, True]


@pytest.mark.parametrize(
    "context",
    [
        {"broker": "redis", "celery": "5.5.0"},  # version outside the specifier
        {"broker": "rabbitmq", "celery": "5.4.0"},  # other broker
        {"broker": "redis", "celery": None},  # version unknown: the rule never applies
    ],
)
def test_a_rule_whose_conditions_do_not_all_hold_changes_nothing(context: dict) -> None:
    rule = {"when": {"broker": "redis", "celery": "<5.5"}, "expect": {"lost": 1}, "why": "#123"}
    assert expected_for(scenario(rule), context) == {"lost": 0, "pending": 1}


def test_later_matching_rules_win() -> None:
    first = {"when": {"kombu": ">=5.3"}, "expect": {"pending": {"min": 1}}, "why": "a"}
    second = {"when": {"kombu": ">=5.4"}, "expect": {"pending": 0}, "why": "b"}
    chosen = expected_for(scenario(first, second), {"kombu": "5.4.1"})
    assert chosen == {"lost": 0, "pending": 0}
    assert expected_for(scenario(first, second), {"kombu": "5.3.0"})["pending"] == Range(min=1)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"when": {"python": "<3.12"}, "expect": {"lost": 1}, "why": "x"}, "unknown condition"),
        ({"when": {"celery": "five"}, "expect": {"lost": 1}, "why": "x"}, "version specifier"),
        ({"when": {"celery": "<5"}, "expect": {"lots": 1}, "why": "x"}, "unknown verdict"),
        ({"when": {"celery": "<5"}, "expect": {"lost": -1}, "why": "x"}, "cannot be negative"),
        ({"when": {"celery": "<5"}, "expect": {"lost": 1}}, "why"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(rule: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as raised:
        scenario(rule)
    assert "expect_when" in str(raised.value)


def test_exact_expectations() -> None:
    results = evaluate({"ok": 2, "lost": 0}, {"ok": 2, "lost": 1})

    assert [(r.verdict, r.wanted, r.actual, r.met) for r in results] == [
        ("ok", "== 2", 2, True),
        ("lost", "== 0", 1, False),
    ]


@pytest.mark.parametrize(
    ("rule", "actual", "met", "wanted"),
    [
        (Range(min=1), 0, False, ">= 1"),
        (Range(min=1), 7, True, ">= 1"),
        (Range(max=2), 3, False, "<= 2"),
        (Range(max=2), 0, True, "<= 2"),
        (Range(min=1, max=2), 1, True, ">= 1 and <= 2"),
        (Range(min=1, max=2), 2, True, ">= 1 and <= 2"),
        (Range(min=1, max=2), 3, False, ">= 1 and <= 2"),
        (Range(), 99, True, "any"),
    ],
)
def test_ranged_expectations(rule: Range, actual: int, met: bool, wanted: str) -> None:
    (result,) = evaluate({"pending": rule}, {"pending": actual})

    assert (result.met, result.wanted, result.actual) == (met, wanted, actual)


def test_expectation_on_a_verdict_missing_from_counts_reads_zero() -> None:
    (result,) = evaluate({"unexpected": 0}, {})
    assert result.actual == 0 and result.met
