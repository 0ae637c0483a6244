"""The pytest plugin as a user meets it: scenario files as items, outcomes, options, fixtures.

Collection tests are fast and run pytest in-process; the ones marked ``integration`` start real
Redis servers and real Celery workers (short copies of scenario 03: a child killed under
acks_late + reject) in a pytest subprocess, as a user's run would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from celery_chaos.core import history as h
from celery_chaos.core.checker import check
from celery_chaos.testing import assert_verdicts

pytest_plugins = ["pytester"]

SHORT = """\
name: {name}
description: scenario 03 with small steps (a child killed under acks_late + reject)
celery: {{task_acks_late: true, task_reject_on_worker_lost: true, worker_prefetch_multiplier: 1}}
workers: {{count: 1, concurrency: 2}}
workload:
  - task: sample_tasks.tasks.ingest_document
    count: 2
    kwargs: {{doc_id: "{name}-{{n}}", steps: 4, step_seconds: 0.05}}
faults:
  - {{kind: kill_child, when: {{task: 0, checkpoint: step-2}}}}
expect: {expect}
settle: 0.3
timeout: 30
"""
MEETS = "{ok: 1, recovered: 1, lost: 0, stuck_locks: 0}"
WORKFLOW = "name: CI\non: [push]\njobs: {test: {runs-on: ubuntu-latest}}\n"


def write(pytester: pytest.Pytester, relpath: str, text: str) -> Path:
    path = pytester.path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def short(pytester: pytest.Pytester, relpath: str, name: str, expect: str = MEETS) -> Path:
    return write(pytester, relpath, SHORT.format(name=name, expect=expect))


# --- collection (no workers) -----------------------------------------------------------------


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, celery_chaos.pytest_plugin\n"
        "heavy = [m for m in ('celery', 'kombu', 'redis', 'pydantic', 'celery_chaos.run.runner')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scenario_files_are_items_and_other_yaml_is_not(pytester: pytest.Pytester) -> None:
    short(pytester, "scenarios/one.yaml", "one")
    short(pytester, "scenarios/nested/two.yml", "two")
    write(pytester, "scenarios/shared-settings.yaml", "celery: {task_acks_late: true}\n")
    write(pytester, ".github/workflows/ci.yml", WORKFLOW)
    short(pytester, "tests/fixtures/looks-like-one.yaml", "fixture")
    result = pytester.runpytest("--collect-only", "-q", "scenarios/", "tests/", ".github/")
    result.stdout.fnmatch_lines(
        [
            "scenarios/nested/two.yml::two",
            "scenarios/one.yaml::one",
            "2 tests collected*",
        ]
    )
    result.stdout.no_fnmatch_line("*fixture*")
    result.stdout.no_fnmatch_line("*ci.yml*")


def test_a_file_named_explicitly_is_collected(pytester: pytest.Pytester) -> None:
    short(pytester, "elsewhere/mine.yaml", "mine")
    result = pytester.runpytest("--collect-only", "-q", "elsewhere/mine.yaml")
    result.stdout.fnmatch_lines(["elsewhere/mine.yaml::mine", "1 test collected*"])


def test_ini_option_chooses_the_scenario_folders(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nchaos_scenario_paths =\n    chaos\n")
    short(pytester, "chaos/a.yaml", "in-chaos")
    short(pytester, "scenarios/b.yaml", "in-scenarios")
    result = pytester.runpytest("--collect-only", "-q", "chaos/", "scenarios/")
    result.stdout.fnmatch_lines(["chaos/a.yaml::in-chaos", "1 test collected*"])


def test_k_selects_by_scenario_name(pytester: pytest.Pytester) -> None:
    short(pytester, "scenarios/01-x.yaml", "reject-recovers")
    short(pytester, "scenarios/02-y.yaml", "defaults-lose")
    result = pytester.runpytest("--collect-only", "-q", "scenarios/", "-k", "reject")
    result.stdout.fnmatch_lines(
        ["scenarios/01-x.yaml::reject-recovers", "1/2 tests collected (1 deselected)*"]
    )


def test_malformed_file_is_a_collection_error_naming_file_and_field(
    pytester: pytest.Pytester,
) -> None:
    bad = SHORT.format(name="bad", expect=MEETS).replace("count: 1,", "count: -1,")
    write(pytester, "scenarios/bad.yaml", bad)
    write(pytester, "scenarios/broken.yaml", "name: broken\nworkload: [\n")
    result = pytester.runpytest("scenarios/")
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting scenarios/bad.yaml*",
            "scenarios/bad.yaml: workers.count: Input should be greater than or equal to 0",
            "*ERROR collecting scenarios/broken.yaml*",
            "scenarios/broken.yaml: line *: not valid YAML*",
        ]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_duplicate_scenario_names_are_a_collection_error(pytester: pytest.Pytester) -> None:
    short(pytester, "scenarios/a.yaml", "same")
    short(pytester, "scenarios/b.yaml", "same")
    result = pytester.runpytest("--collect-only", "scenarios/")
    result.stdout.fnmatch_lines(["scenarios/b.yaml: name: duplicate scenario name 'same'*"])


def test_not_runnable_is_a_skip_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # partition runs on local now (the proxy, issue 12): a host without a writable memory cgroup
    # is the remaining way a local scenario is not runnable, so this host is made one.
    from celery_chaos.placements.local.cgroups import CgroupUnavailable, MemoryCgroup

    def unavailable(*_: object, **__: object) -> None:
        raise CgroupUnavailable("no writable memory cgroup (test)")

    monkeypatch.setattr(MemoryCgroup, "create", unavailable)
    text = SHORT.format(name="partitioned", expect=MEETS).replace("kind: kill_child", "kind: oom")
    write(pytester, "scenarios/partition.yaml", text)
    result = pytester.runpytest("scenarios/", "-rs", "--chaos-report-dir", "out")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*scenarios/partition.yaml:1: oom/memory_limit needs a writable memory cgroup*"]
    )
    assert list((pytester.path / "out").glob("*/partitioned/result.json"))


BAD_MARKERS = """
import pytest

@pytest.mark.chaos(workers={"count": -1})
def test_bad_count(chaos_env):
    pass

@pytest.mark.chaos(celery={}, worker={"count": 1})
def test_unknown_key(chaos_env):
    pass

@pytest.mark.chaos(faults=["partition"], workers={"count": 0})
def test_partition_is_supported_on_local_now(chaos_env):
    assert "partition" in chaos_env.backend.supported_faults
"""


def test_chaos_marker_errors_and_unsupported_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_markers=BAD_MARKERS)
    result = pytester.runpytest("-rs", "--chaos-report-dir", "out")
    result.assert_outcomes(errors=2, passed=1)  # partition: the local backend's proxy (issue 12)
    result.stdout.fnmatch_lines_random(
        [
            "@pytest.mark.chaos: workers.count: Input should be greater than or equal to 0",
            "@pytest.mark.chaos: worker: unknown key; use celery, workers, broker, faults,"
            " results, services, setup, invariants",
        ]
    )


def test_assert_verdicts_lists_offenders() -> None:
    history = [
        h.make_event(h.DISPATCH, task_id="t0", task="app.work", index=0),
        h.make_event(h.ATTEMPT_START, task_id="t0", task="app.work", attempt=1, pid=7),
        h.make_event(h.PROCESS_EXIT, task_id="t0", attempt=1, pid=7, reason="SIGKILL by test"),
        h.make_event(h.DISPATCH, task_id="t1", task="app.work", index=1),
        h.make_event(h.ATTEMPT_START, task_id="t1", task="app.work", attempt=1, pid=8),
        h.make_event(h.ATTEMPT_END, task_id="t1", attempt=1, state="SUCCESS"),
    ]
    verdicts = check(history)
    assert_verdicts(verdicts, lost=1, ok={"min": 1})
    with pytest.raises(AssertionError) as raised:
        assert_verdicts(verdicts, lost=0, ok=1)
    message = str(raised.value)
    assert "lost: expected == 0, got 1 (app.work[t0])" in message
    assert "#0 app.work[t0]: lost; attempt 1: died (SIGKILL by test)" in message
    with pytest.raises(TypeError, match="unknown verdict 'lsot'"):
        assert_verdicts(verdicts, lsot=0)


# --- running (real redis-server, real celery workers) ----------------------------------------


@pytest.mark.integration
def test_a_failed_expectation_names_the_task_and_the_seed(pytester: pytest.Pytester) -> None:
    short(pytester, "scenarios/wrong.yaml", "claims-no-recovery", "{recovered: 0}")
    result = pytester.runpytest_subprocess("scenarios/", "--chaos-seed", "4242", timeout=120)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "scenario claims-no-recovery: expectations not met (backend local, seed 4242)",
            "unmet: recovered: expected == 0, got 1 (sample_tasks.tasks.ingest_document?*?)",
            "  #0 sample_tasks.tasks.ingest_document?*?: recovered; attempt 1 on *: died at"
            " step-2 (SIGKILL by kill_child fault); attempt 2 on *: SUCCESS",
            "replay: pytest 'scenarios/wrong.yaml::claims-no-recovery' --chaos-seed 4242",
        ]
    )


@pytest.mark.integration
def test_a_backend_error_is_a_test_error(pytester: pytest.Pytester) -> None:
    text = SHORT.format(name="no-app", expect=MEETS).replace(
        # an app that imports here (the preflight passes) but whose worker cannot start
        "workers: {count: 1, concurrency: 2}",
        "workers: {count: 1, env: {PYTHONHOME: /nonexistent}}",
    )
    write(pytester, "scenarios/no-app.yaml", text)
    result = pytester.runpytest_subprocess("scenarios/", timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["scenario no-app could not run on the local backend: worker * exited during startup*"]
    )


ENV_TESTS = """
import pytest
from celery_chaos.testing import assert_verdicts

pytestmark = pytest.mark.chaos(
    celery={"task_acks_late": True, "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1},
    workers={"count": 1, "concurrency": 2},
)
SEEN = {}


def ingest(env, doc_id):
    kwargs = {"doc_id": doc_id, "steps": 4, "step_seconds": 0.05}
    return env.dispatch("sample_tasks.tasks.ingest_document", kwargs=kwargs)


def test_killed_child_is_recovered(chaos_env):
    killed, other = ingest(chaos_env, "a"), ingest(chaos_env, "b")
    chaos_env.fault("kill_child", task=killed, checkpoint="step-2")
    assert chaos_env.wait_quiescent(timeout=30)
    verdicts = chaos_env.verdicts()
    assert_verdicts(verdicts, recovered=1, ok=1, lost=0, stuck_locks=0)
    assert {t.task_id: t.outcome for t in verdicts.tasks} == {killed: "recovered", other: "ok"}
    assert not chaos_env.dirty  # a killed pool process is replaced by Celery itself
    SEEN["env"] = (chaos_env.id, chaos_env.worker_pids)


def test_second_test_shares_the_environment_and_sees_only_its_tasks(chaos_env):
    assert (chaos_env.id, chaos_env.worker_pids) == SEEN["env"]
    mine = ingest(chaos_env, "c")
    assert chaos_env.wait_quiescent(timeout=30)
    verdicts = chaos_env.verdicts()
    assert [t.task_id for t in verdicts.tasks] == [mine]
    assert_verdicts(verdicts, ok=1, recovered=0, unexpected=0)


def test_wrong_expectation_fails_naming_the_task(chaos_env):
    task, _ = ingest(chaos_env, "d"), ingest(chaos_env, "d2")  # a busy pool requeues faster
    chaos_env.fault("kill_child", task=task, checkpoint="step-1")
    chaos_env.wait_quiescent(timeout=30)
    assert_verdicts(chaos_env.verdicts(), recovered=0)


def test_killing_the_worker_marks_the_environment_dirty(chaos_env):
    SEEN["dirty"] = chaos_env.id
    chaos_env.fault("kill_worker", worker=0)
    assert chaos_env.dirty


def test_next_test_gets_a_fresh_environment(chaos_env):
    assert chaos_env.id not in (SEEN["env"][0], SEEN["dirty"])
    assert chaos_env.worker_pids != SEEN["env"][1]
    ingest(chaos_env, "e")
    assert chaos_env.wait_quiescent(timeout=30)
    assert_verdicts(chaos_env.verdicts(), ok=1)
"""


@pytest.mark.integration
def test_chaos_env_fixture_with_real_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_env=ENV_TESTS)
    result = pytester.runpytest_subprocess("--chaos-report-dir", "out", timeout=240)
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: verdicts not as expected:",
            "*recovered: expected == 0, got 1 (sample_tasks.tasks.ingest_document?*?)",
            "*#0 sample_tasks.tasks.ingest_document?*?: recovered; attempt 1 *: died at step-1*",
            "*Captured chaos setup*",
            "environment env1-* (test 3 on it), seed * (replay: --chaos-seed *)*",
        ]
    )
    runs = list((pytester.path / "out").glob("*/envs/*/test_env.py_*/history.jsonl"))
    assert len(runs) == 5


RABBITMQ_ENV_TESTS = """
import pytest
from celery_chaos.testing import assert_verdicts

pytestmark = pytest.mark.chaos(
    celery={"task_acks_late": True, "task_reject_on_worker_lost": True},
    workers={"count": 1, "concurrency": 2},
)

SEEN = {}


def ingest(env, doc_id):
    kwargs = {"doc_id": doc_id, "steps": 4, "step_seconds": 0.05}
    return env.dispatch("sample_tasks.tasks.ingest_document", kwargs=kwargs)


def test_killed_child_is_recovered_on_rabbitmq(chaos_env):
    assert chaos_env.scenario.broker.kind == "rabbitmq"
    killed = ingest(chaos_env, "a")
    chaos_env.fault("kill_child", task=killed, checkpoint="step-2")
    assert chaos_env.wait_quiescent(timeout=60)
    assert_verdicts(chaos_env.verdicts(), recovered=1, lost=0)
    SEEN["env"] = chaos_env.id


def test_the_environment_lives_on_after_a_snapshot(chaos_env):
    assert chaos_env.id == SEEN["env"]  # the snapshot closed no connection
    ingest(chaos_env, "b")
    assert chaos_env.wait_quiescent(timeout=60)
    assert_verdicts(chaos_env.verdicts(), ok=1)
"""


@pytest.mark.integration
def test_chaos_env_on_rabbitmq_with_the_broker_option(pytester: pytest.Pytester) -> None:
    from celery_chaos.placements.local.rabbitmq_server import RabbitMQUnavailable, find_rabbitmq

    try:
        find_rabbitmq()
    except RabbitMQUnavailable as missing:
        pytest.skip(str(missing))
    pytester.makepyfile(test_env=RABBITMQ_ENV_TESTS)
    result = pytester.runpytest_subprocess(
        "--chaos-report-dir", "out", "--chaos-broker", "rabbitmq", "-rA", timeout=300
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*environment env1-* broker rabbitmq, report:*"])


@pytest.mark.integration
def test_xdist_runs_scenario_files_in_parallel(pytester: pytest.Pytester) -> None:
    short(pytester, "scenarios/one.yaml", "one")
    short(pytester, "scenarios/two.yaml", "two")
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "scenarios/", "--chaos-report-dir", "out", timeout=240
    )
    result.assert_outcomes(passed=2)
    found = (pytester.path / "out").glob("2*/*/result.json")  # not the ``latest`` link
    assert sorted(p.parent.name for p in found) == ["one", "two"]


NOT_PROVEN = """
import pytest

pytestmark = pytest.mark.chaos(workers={"count": 1, "concurrency": 1})


def test_partition_in_the_body_is_a_skip(chaos_env):
    chaos_env.fault("partition", worker=0)


def test_a_fault_with_no_worker_to_hit_is_inconclusive(chaos_env):
    chaos_env.dispatch("sample_tasks.tasks.work", kwargs={"seconds": 0.2, "steps": 2})
    chaos_env.fault("kill_worker", worker=5)
    assert chaos_env.wait_quiescent(timeout=30)
"""


@pytest.mark.integration
def test_runs_that_proved_nothing_are_not_passes(pytester: pytest.Pytester) -> None:
    text = (
        SHORT.format(name="never-reached", expect="{ok: 2}")
        .replace("checkpoint: step-2", "checkpoint: no-such-step")
        .replace("timeout: 30", "timeout: 5")
    )
    write(pytester, "scenarios/never.yaml", text)
    pytester.makepyfile(test_not_proven=NOT_PROVEN)
    result = pytester.runpytest_subprocess(
        "scenarios/", "test_not_proven.py", "-rs", "--chaos-report-dir", "out", timeout=240
    )
    result.assert_outcomes(passed=1, skipped=1, failed=1, errors=1)
    result.stdout.fnmatch_lines_random(
        [
            "scenario never-reached: inconclusive (backend local, seed *)",
            "why: fault 0 (kill_child) missed: its trigger did not happen before the run ended",
            "*inconclusive: fault 0 (kill_worker) missed: no worker to target",
            "SKIPPED*partition is not supported by the local backend*",
        ]
    )
