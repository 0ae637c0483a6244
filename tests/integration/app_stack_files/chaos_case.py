"""A ``chaos_env`` test as an app's own test suite has it, run by the app venv's pytest.

Not collected by this repository's suite (the name matches no ``test_*.py``):
tests/integration/test_install_beside_app.py copies it into an empty folder and runs it with a
stack's pytest, where the plugin, the workers and this process all use the stack's Celery.
"""

import pytest
from celery_chaos.testing import assert_verdicts


@pytest.mark.chaos(
    celery={
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
    },
    workers={"count": 1, "concurrency": 2},
)
def test_killed_child_is_rerun_once(chaos_env):
    task = chaos_env.dispatch(
        "sample_tasks.tasks.ingest_document",
        kwargs={"doc_id": "beside-the-app", "steps": 4, "step_seconds": 0.05},
    )
    chaos_env.fault("kill_child", task=task, checkpoint="step-2")
    assert chaos_env.wait_quiescent(timeout=60)
    assert_verdicts(chaos_env.verdicts(), recovered=1, lost=0, stuck_locks=0, ok=0)
