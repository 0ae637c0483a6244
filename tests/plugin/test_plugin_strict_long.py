"""The pytest plugin's strict and long options as a user meets them: long scenarios deselected
unless asked for; ``--chaos-strict``/``chaos_strict`` failing a scenario whose finding its
expectations do not name (with real workers: a child killed under Celery's defaults)."""

from __future__ import annotations

import pytest

from tests.plugin.test_pytest_plugin import short, write

pytest_plugins = ["pytester"]


def long_and_short(pytester: pytest.Pytester) -> None:
    short(pytester, "scenarios/quick.yaml", "quick")
    text = (
        (pytester.path / "scenarios/quick.yaml").read_text().replace("timeout: 30", "timeout: 720")
    )
    write(pytester, "scenarios/nightly/storm.yaml", text.replace("name: quick", "name: storm"))


def test_long_scenarios_are_deselected_unless_asked_for(pytester: pytest.Pytester) -> None:
    long_and_short(pytester)

    plain = pytester.runpytest("--collect-only", "-q", "scenarios/")
    plain.stdout.fnmatch_lines(
        ["scenarios/quick.yaml::quick", "1/2 tests collected (1 deselected)*"]
    )
    asked = pytester.runpytest("--collect-only", "-q", "scenarios/", "--chaos-long")
    asked.stdout.fnmatch_lines(
        ["scenarios/nightly/storm.yaml::storm", "scenarios/quick.yaml::quick"]
    )
    assert "deselected" not in asked.stdout.str()
    marked = pytester.runpytest("--collect-only", "-q", "scenarios/", "-m", "long")
    marked.stdout.fnmatch_lines(["scenarios/nightly/storm.yaml::storm", "1/2 tests collected*"])
    named = pytester.runpytest("--collect-only", "-q", "scenarios/nightly/storm.yaml")
    named.stdout.fnmatch_lines(["scenarios/nightly/storm.yaml::storm"])
    assert "deselected" not in named.stdout.str()


SHOW_STRICT = """
from celery_chaos.pytest_plugin import chaos_session


def pytest_collection_finish(session):
    print(f"chaos strict: {chaos_session(session.config).options.strict}")
"""


@pytest.mark.parametrize(
    ("ini", "args", "strict"),
    [("", [], False), ("", ["--chaos-strict"], True), ("chaos_strict = true", [], True)],
)
def test_strict_comes_from_the_option_or_the_ini_file(
    pytester: pytest.Pytester, ini: str, args: list[str], strict: bool
) -> None:
    pytester.makeconftest(SHOW_STRICT)
    pytester.makeini(f"[pytest]\n{ini}\n")
    short(pytester, "scenarios/quick.yaml", "quick")
    result = pytester.runpytest("--collect-only", "-q", "-s", "scenarios/", *args)
    result.stdout.fnmatch_lines([f"chaos strict: {strict}"])


DEFAULTS_KILL = "{ok: 1, lost: 1, failed: 1, stuck_locks: 1}"


@pytest.mark.integration
def test_chaos_strict_fails_a_scenario_whose_finding_is_unclaimed(
    pytester: pytest.Pytester,
) -> None:
    """Celery's defaults: the killed task is lost, Celery records WorkerLostError (``failed``)
    and its lock stays held. Naming all of it passes strict; naming only ``lost`` does not."""
    for name, expect in (("claimed", DEFAULTS_KILL), ("unclaimed", "{ok: 1, lost: 1}")):
        path = short(pytester, f"scenarios/{name}.yaml", name, expect)
        text = path.read_text().replace(
            "task_acks_late: true, task_reject_on_worker_lost: true, ", ""
        )
        path.write_text(text)
    result = pytester.runpytest_subprocess(
        "scenarios/", "--chaos-strict", "--chaos-report-dir", "out", timeout=240
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "scenario unclaimed: expectations not met (backend local, seed *)",
            "unmet: unclaimed: failed = 1 (sample_tasks.tasks.ingest_document?*?);"
            " unclaimed: stuck_locks = 1 (lock doc:unclaimed-0 (owner *))",
        ]
    )
