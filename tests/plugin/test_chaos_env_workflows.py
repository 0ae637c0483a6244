"""``chaos_env.dispatch_workflow`` and ``chaos_env.revoke`` on real workers, in a pytest
subprocess as a user's run would: a fault armed on a chord's header member before the chord is
sent, and a revoke the worker honours."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import uuid
import pytest

STEP = "sample_tasks.tasks.step"


def leaf(name, seconds=1.0):
    return {"task": STEP, "kwargs": {"name": name, "seconds": seconds, "steps": 10}}


@pytest.mark.chaos(results={"server": "ledger"}, workers={"concurrency": 3})
def test_chord_whose_header_member_is_killed_never_calls_back(chaos_env):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    chaos_env.fault("kill_child", task=ids[1], checkpoint="step-5")
    chord = {"chord": {"header": [leaf("a"), leaf("b")], "body": leaf("merge", 0.2)}}
    assert chaos_env.dispatch_workflow(chord, task_ids=ids) == ids
    assert chaos_env.wait_quiescent(timeout=30)
    verdicts = chaos_env.verdicts()
    by_id = {t.task_id: t for t in verdicts.tasks}
    assert [by_id[i].outcome for i in ids] == ["ok", "lost", "lost"]
    assert by_id[ids[2]].attempts == []  # the callback never ran
    (workflow,) = verdicts.workflows
    assert workflow.outcome == "broken" and workflow.members[2]["callback"]


@pytest.mark.chaos(results={"server": "ledger"}, workers={"concurrency": 3})
def test_revoked_task_is_discarded(chaos_env):
    task = chaos_env.dispatch(STEP, kwargs={"name": "later"}, countdown=3)
    chaos_env.revoke(task)
    assert chaos_env.wait_quiescent(timeout=30)
    verdicts = chaos_env.verdicts()
    assert verdicts.tasks[0].attempts == [] and verdicts.tasks[0].labels == ["revoked"]
    assert verdicts.counts["revoked_but_ran"] == 0


def test_a_chord_without_a_result_backend_is_refused(chaos_env):
    chord = {"chord": {"header": [leaf("a")], "body": leaf("merge")}}
    with pytest.raises(TypeError, match="a chord needs a result backend"):
        chaos_env.dispatch_workflow(chord)
"""


@pytest.mark.integration
def test_chaos_env_sends_workflows_and_revokes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wf=TESTS)
    result = pytester.runpytest_subprocess("--chaos-report-dir", "out", timeout=240)
    result.assert_outcomes(passed=3)
