"""``celery_chaos.testing`` without workers: the builder validates through the scenario schema
and the preflight (a built scenario equals the file it mirrors; its errors are a file's errors),
and ``assert_verdicts`` says why each broken verdict happened. Real runs:
tests/plugin/test_testing_runs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.core import history as h
from celery_chaos.core.broker_state import BrokerState
from celery_chaos.core.explain import check_explained, run_settings
from celery_chaos.core.scenario import load_file
from celery_chaos.testing import Scenario, ScenarioError, assert_verdicts, scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
WORK = "sample_tasks.tasks.work"


def defaults_child_kill(name: str, description: str) -> Scenario:
    """Scenario 01, written with the builder."""
    return (
        scenario(name, description)
        .with_celery()
        .with_workers(1, concurrency=2)
        .with_workload(WORK, count=2, kwargs={"seconds": 1.0, "steps": 10})
        .with_fault("kill_child", when={"task": 0, "checkpoint": "step-5"})
        .expect(lost={"min": 1}, failed=1, recovered=0, ok=1)
        .with_options(timeout=30)
        .build()
    )


def test_a_built_scenario_equals_the_file_it_mirrors() -> None:
    loaded = load_file(SCENARIOS / "01-defaults-child-kill.yaml")

    assert defaults_child_kill(loaded.name, loaded.description) == loaded


def test_the_builder_merges_sections_and_numbers_tasks_in_order() -> None:
    built = (
        scenario("merged")
        .with_celery(task_acks_late=True)
        .with_celery(task_reject_on_worker_lost=True)
        .with_workers(2)
        .with_workers(pool="threads")
        .with_workload(WORK, count=2)
        .with_workload(chain=[{"task": WORK}, {"task": WORK}])
        .with_fault("kill_worker", when={"at": 1.0}, target={"worker": 1})
        .build()
    )

    assert built.celery == {"task_acks_late": True, "task_reject_on_worker_lost": True}
    assert (built.workers.count, built.workers.pool) == (2, "threads")
    assert [item.count for item in built.workload] == [2, 1]
    assert built.workload[1].chain is not None and built.faults[0].target.worker == 1
    assert built.description == "merged (built in Python)"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: scenario("x").with_workload(WORK).with_fault("explode", when={"at": 1}),
            "scenario('x'): faults[0].kind: Input should be 'kill_child', ",
        ),
        (lambda: scenario("x"), "scenario('x'): workload: List should have at least 1 item"),
        (lambda: scenario("Bad Name").with_workload(WORK), "scenario('Bad Name'): name: "),
        (
            lambda: scenario("x").with_workload(WORK).expect(lsot=0),
            "scenario('x'): expect: unknown verdict 'lsot'",
        ),
        (  # the preflight a file gets: Celery's own setting names
            lambda: scenario("x").with_celery(task_acks_lat=True).with_workload(WORK),
            "scenario('x'): celery.task_acks_lat: not a Celery setting (did you mean"
            " task_acks_late?)",
        ),
        (  # ... and the app registers the workload's tasks
            lambda: scenario("x").with_workload("sample_tasks.tasks.nope"),
            "scenario('x'): workload[0].task: 'sample_tasks.tasks.nope' is not registered",
        ),
    ],
)
def test_a_builder_error_is_the_files_one_line(build, message: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        build().build()

    text = str(raised.value)
    assert text.startswith(message) and "\n" not in text


def test_build_without_the_app_check_skips_only_the_preflight() -> None:
    unregistered = scenario("x").with_workload("elsewhere.tasks.run")

    assert unregistered.build(check_app=False).workload[0].task == "elsewhere.tasks.run"
    with pytest.raises(ScenarioError, match="is not registered"):
        unregistered.build()


def killed_and_finished() -> list[h.Event]:
    return [
        h.make_event(h.DISPATCH, task_id="t0", task="app.work", index=0),
        h.make_event(h.ATTEMPT_START, task_id="t0", task="app.work", attempt=1, pid=7),
        h.make_event(h.PROCESS_EXIT, task_id="t0", attempt=1, pid=7, reason="SIGKILL by test"),
        h.make_event(h.DISPATCH, task_id="t1", task="app.work", index=1),
        h.make_event(h.ATTEMPT_START, task_id="t1", task="app.work", attempt=1, pid=8),
        h.make_event(h.ATTEMPT_END, task_id="t1", attempt=1, state="SUCCESS"),
    ]


def checked() -> tuple:
    """Verdicts as ``chaos_env.verdicts()`` makes them: checked and explained."""
    plan = scenario("x").with_workload(WORK, count=2).build()
    snapshot = (killed_and_finished(), BrokerState(), {})
    return check_explained(snapshot, run_settings(plan)), plan


def test_an_unmet_verdict_is_explained_in_the_assertion() -> None:
    verdicts, _ = checked()
    (line,) = verdicts.explanations
    assert line.startswith("lost #0 app.work[t0]: ")

    with pytest.raises(AssertionError) as raised:
        assert_verdicts(verdicts, lost=0, ok=1)

    message = str(raised.value).splitlines()
    assert message[:3] == [
        "verdicts not as expected:",
        "  lost: expected == 0, got 1 (app.work[t0])",
        f"explained: {line}",
    ]
    assert "task_acks_late=False (Celery default)" in line


def test_a_shortfall_with_no_line_of_its_own_shows_every_line() -> None:
    verdicts, _ = checked()

    with pytest.raises(AssertionError) as raised:
        assert_verdicts(verdicts, ok=2)

    assert f"explained: {verdicts.explanations[0]}" in str(raised.value)


def test_the_assertion_masks_url_passwords_and_result_json_is_unchanged() -> None:
    verdicts, _ = checked()
    verdicts.explanations = ["lost #0 app.work[t0]: broker redis://:hunter2@broker:6379/0 said"]

    with pytest.raises(AssertionError) as raised:
        assert_verdicts(verdicts, lost=0)

    assert "redis://:***@broker:6379/0" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert "explanations" not in verdicts.as_dict()  # result.json keeps them once, at top level


def test_the_reference_page_names_every_public_name() -> None:
    import celery_chaos.testing

    page = (Path(__file__).resolve().parents[2] / "docs/reference/testing.md").read_text()
    assert [name for name in celery_chaos.testing.__all__ if f"`{name}" not in page] == []
