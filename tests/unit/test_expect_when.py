"""``expect_when``: expectations that legitimately differ by broker or library version."""

from __future__ import annotations

import pytest
from celery_chaos.core.expectations import evaluate, expected_for
from celery_chaos.core.scenario import Range, ScenarioError, parse_scenario

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
