"""A small inline scenario for unit tests that need a parsed ``Scenario`` (three tasks, a
timeout after every random window the tests draw), changed per test by keyword."""

from __future__ import annotations

import copy
from typing import Any

from celery_chaos.core.scenario import Scenario, parse_scenario

from tests.unit.histories import TASK

BASE: dict[str, Any] = {
    "name": "schedule",
    "description": "scheduling only",
    "workload": [{"task": TASK, "count": 3}],
    "timeout": 120,  # after every random window the tests draw: a fault must be able to fire
}


def scenario(**changes: Any) -> Scenario:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return parse_scenario(data, "inline")
