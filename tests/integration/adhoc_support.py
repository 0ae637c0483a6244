"""Ad hoc scenarios for integration tests: a spec given as keywords, run on the local backend
with real workers (optionally seeded), and the sample ``work`` task that tests interrupt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from celery_chaos.core.conclusion import ScenarioResult
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.run.runner import RunOptions, run_scenario

ACK_LATE = {"task_acks_late": True, "task_reject_on_worker_lost": True}
FAST_RESTORE = {
    "broker_transport_options": {
        "visibility_timeout": 2,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
}


def run(tmp_path: Path, seed: int | None = None, **spec: Any) -> ScenarioResult:
    data = {"name": "adhoc", "description": "integration test", "timeout": 30, **spec}
    scenario = parse_scenario(yaml.safe_load(yaml.safe_dump(data)), "adhoc.yaml")
    result = run_scenario(
        scenario, RunOptions(report_dir=tmp_path, seed=seed), tmp_path, log=lambda _: None
    )
    assert result.verdicts is not None, result.reason
    return result


def work(seconds: float = 1.0, steps: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "task": "sample_tasks.tasks.work",
        "kwargs": {"seconds": seconds, "steps": steps},
        **extra,
    }
