"""``chaos_env`` with the app's own state: ``services``, ``setup`` and ``invariants`` in the
marker, ``env.database_url`` and ``env.verdicts()`` judging invariants and ``result_not_stored``,
on real workers and a real PostgreSQL, in a pytest subprocess as a user's run would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from celery_chaos.core.scenario_base import ScenarioError
from celery_chaos.run.session import env_key, env_scenario

from tests.integration.services_support import needs_postgres

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]
ROWS = "CREATE TABLE rows (task_id text PRIMARY KEY, at timestamptz DEFAULT now())"
OF_TEST = "SELECT count(*) FROM rows WHERE task_id IN ({task_ids})"


# --- the marker (no workers) -----------------------------------------------------------------


def test_services_setup_and_invariants_are_part_of_the_environment_key() -> None:
    plain = env_scenario({})
    with_pg = env_scenario({"services": {"postgres": {}}})
    with_setup = env_scenario({"services": {"postgres": {}}, "setup": [{"sql": ROWS}]})
    checked = env_scenario(
        {
            "services": {"postgres": {}},
            "setup": [{"sql": ROWS}],
            "invariants": [{"name": "rows", "sql": OF_TEST, "expect": 1}],
        }
    )
    keys = {env_key("local", s) for s in (plain, with_pg, with_setup, checked)}
    assert len(keys) == 4  # no two of these environments are shared
    assert env_key("local", with_pg) == env_key(
        "local", env_scenario({"services": {"postgres": {}}})
    )
    assert checked.invariants[0].name == "rows" and checked.setup[0].sql == ROWS


def test_the_marker_is_validated_by_the_scenario_schema() -> None:
    with pytest.raises(ScenarioError, match=r"^@pytest.mark.chaos: invariants.*postgres"):
        env_scenario({"invariants": [{"name": "rows", "sql": OF_TEST, "expect": 1}]})
    with pytest.raises(
        ScenarioError, match=r"^@pytest.mark.chaos: setup\[0\]: give exactly one of sql or run"
    ):
        env_scenario({"services": {"postgres": {}}, "setup": [{"sql": ROWS, "run": "true"}]})
    with pytest.raises(ValueError, match="unknown key; use .*services, setup, invariants"):
        env_scenario({"service": {"postgres": {}}})


# --- real workers, a real PostgreSQL -----------------------------------------------------------

ROW_TESTS = f"""
import pytest
from celery_chaos.services import postgres
from celery_chaos.testing import assert_verdicts

ROWS = {ROWS!r}
RECORD = "sample_tasks.tasks.record_row"
ONE_ROW = pytest.mark.chaos(
    services={{"postgres": {{}}}},
    setup=[{{"sql": ROWS}}, {{"run": 'echo "$DATABASE_URL" >> setup-ran.txt'}}],
    invariants=[{{"name": "one-row-per-task", "sql": {OF_TEST!r}, "expect": 1}}],
    workers={{"count": 1, "concurrency": 2}},
)
SEEN = {{}}


@ONE_ROW
def test_a_task_writes_a_row_the_invariant_reads(chaos_env):
    task = chaos_env.dispatch(RECORD)
    assert chaos_env.wait_quiescent(timeout=60)
    verdicts = chaos_env.verdicts()
    assert_verdicts(verdicts, ok=1, invariant_violations=0, result_not_stored=0)
    (judged,) = verdicts.invariants
    assert judged["value"] == 1 and judged["held"], judged
    sql = f"SELECT count(*) FROM rows WHERE task_id = '{{task}}'"
    assert postgres.scalar(chaos_env.database_url, sql) == 1
    ran = (chaos_env.work_dir / "setup-ran.txt").read_text().split()
    assert ran == [chaos_env.database_url]  # the setup step saw DATABASE_URL, ran once
    SEEN["first"] = chaos_env.id


@ONE_ROW
def test_the_next_test_gets_fresh_services(chaos_env):
    assert chaos_env.id != SEEN["first"]  # the first test's row must not leak into this one
    assert postgres.scalar(chaos_env.database_url, "SELECT count(*) FROM rows") == 0
    assert len((chaos_env.work_dir / "setup-ran.txt").read_text().splitlines()) == 1


@pytest.mark.chaos(
    services={{"postgres": {{}}}},
    setup=[{{"sql": ROWS}}],
    invariants=[{{"name": "no-rows", "sql": "SELECT count(*) FROM rows", "expect": 0}}],
    workers={{"count": 1, "concurrency": 2}},
)
def test_a_broken_invariant_is_reported_by_the_verdicts(chaos_env):
    chaos_env.dispatch(RECORD)
    chaos_env.dispatch(RECORD)
    assert chaos_env.wait_quiescent(timeout=60)
    verdicts = chaos_env.verdicts()
    assert verdicts.counts["invariant_violations"] == 1
    assert verdicts.offenders("invariant_violations") == ["invariant no-rows = 2 (expected 0)"]
    assert chaos_env.dirty
    with pytest.raises(AssertionError, match="invariant no-rows = 2 .expected 0."):
        assert_verdicts(verdicts, invariant_violations=0)


@pytest.mark.chaos(
    services={{"redis": {{}}}},
    invariants=[{{"name": "no-lock", "redis": "lock:doc:*", "expect": 0, "during": True}}],
)
def test_a_during_invariant_sees_a_lock_held_only_while_the_task_runs(chaos_env):
    chaos_env.dispatch("sample_tasks.tasks.hold_redis_key", kwargs={{"seconds": 2.0}})
    assert chaos_env.wait_quiescent(timeout=60)
    verdicts = chaos_env.verdicts()
    (judged,) = verdicts.invariants
    assert (judged["value"], judged["worst"], judged["held"]) == (0, 1, False), judged
    assert verdicts.counts["invariant_violations"] == 1


@pytest.mark.chaos(setup=[{{"run": "echo 'migration 0002 exploded' >&2; exit 3"}}])
def test_a_failing_setup_step_skips_with_its_output(chaos_env):
    raise AssertionError("never reached: the environment could not be set up")


def test_an_undeclared_service_says_how_to_declare_it(chaos_env):
    with pytest.raises(ValueError, match=r"services={{'postgres': {{}}}}"):
        chaos_env.database_url
"""


@needs_postgres
@pytest.mark.integration
def test_chaos_env_with_a_real_postgres(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_rows=ROW_TESTS)
    result = pytester.runpytest_subprocess("-rs", "--chaos-report-dir", "out", timeout=300)
    result.assert_outcomes(passed=5, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*setup[[]0[]].run*exit 3*migration 0002 exploded*"])
    reports = sorted((pytester.path / "out").glob("*/envs/*/*/result.json"))
    texts = [path.read_text() for path in reports]
    assert any('"no-rows"' in text and '"held": false' in text for text in texts), reports


# --- result_not_stored: a real unreachable result backend --------------------------------------

RESULT_TESTS = """
import socket
import pytest
from celery_chaos.run import results_state
from celery_chaos.testing import assert_verdicts

APP = "tests.integration.result_app:app"
with socket.socket() as sock:  # a port nothing listens on: the app's backend does not exist
    sock.bind(("127.0.0.1", 0))
    CLOSED = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
OWN = pytest.mark.chaos(results="app", workers={"count": 1, "app": APP,
                                                "env": {"RESULT_APP_BACKEND": CLOSED}})


@OWN
def test_the_apps_unreachable_backend_is_result_not_stored(chaos_env):
    task = chaos_env.dispatch("result_app.add", args=[2, 3])
    assert chaos_env.wait_quiescent(timeout=60)
    verdicts = chaos_env.verdicts()
    assert_verdicts(verdicts, ok=1, result_not_stored=1)
    (line,) = verdicts.offenders("result_not_stored")
    assert line.startswith(f"result_app.add[{task}] completed but the result backend "), line


@OWN
def test_another_tests_unstored_result_is_not_counted(chaos_env):
    chaos_env.dispatch("result_app.fire_and_forget")  # ignore_result: nothing to store
    assert chaos_env.wait_quiescent(timeout=60)
    assert_verdicts(chaos_env.verdicts(), ok=1, result_not_stored=0)
    assert chaos_env.tests_run == 1  # the same environment as the test before


@pytest.mark.chaos(workers={"count": 1, "app": APP, "env": {"RESULT_APP_BACKEND": CLOSED}})
def test_the_harness_backend_of_the_apps_kind_stores_it(chaos_env):
    task = chaos_env.dispatch("result_app.add", args=[2, 3])
    assert chaos_env.wait_quiescent(timeout=60)
    assert_verdicts(chaos_env.verdicts(), ok=1, result_not_stored=0)
    history = chaos_env.backend.ledger.read_all()
    states, _ = results_state.read_result_states(chaos_env.backend, history)
    assert states[task] == "SUCCESS"  # read back, not merely unread
"""


@pytest.mark.integration
def test_chaos_env_reads_the_result_backend_back(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))  # the app: tests.integration
    pytester.makepyfile(test_results=RESULT_TESTS)
    result = pytester.runpytest_subprocess("--chaos-report-dir", "out", timeout=300)
    result.assert_outcomes(passed=3)
