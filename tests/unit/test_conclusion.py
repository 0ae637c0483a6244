"""What a run concludes and how it is written: inconclusive runs, exit codes, the fault table
that drives validation/list/repro/README, secrets masked in every report file, versions."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from celery_chaos.brokers.redis import RedisBroker
from celery_chaos.core import history as h
from celery_chaos.core.checker import BrokerState, check
from celery_chaos.core.conclusion import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    NOT_RUNNABLE,
    PASSED,
    ScenarioResult,
    SuiteResult,
    conclude,
    unproven_faults,
)
from celery_chaos.core.expectations import evaluate
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.faults.registry import FAULTS
from celery_chaos.placements.base import WorkerExit
from celery_chaos.report import files as report
from celery_chaos.report.mask import mask, mask_text, secret_name
from celery_chaos.run import versions
from celery_chaos.run.loop import Loop

from tests.unit.fakes import ReapingPlacement, Recorder
from tests.unit.histories import TASK, completed

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {
    "name": "outcome",
    "description": "outcome only",
    "workload": [{"task": TASK, "count": 1}],
    "expect": {"ok": 1},
}


def result(status: str = PASSED, **changes: Any) -> ScenarioResult:
    data = copy.deepcopy(BASE) | changes
    return ScenarioResult(parse_scenario(data, "inline"), status, 1, "local", Path("/tmp/x"))


def missed_fault(index: int = 0, kind: str = "kill_child") -> dict[str, Any]:
    detail = "no running attempt of the target task"
    return {"type": h.FAULT, "ts": 1.0, "fault": index, "kind": kind, "status": "missed",
            "detail": detail, "hits": []}  # fmt: skip


def judged(history: list[dict[str, Any]]) -> ScenarioResult:
    judged = result()
    judged.verdicts = check(history, BrokerState())
    judged.expectations = evaluate(judged.scenario.expect, judged.verdicts.counts)
    conclude(judged, unproven_faults(history))
    return judged


# --- inconclusive ------------------------------------------------------------------------


def test_a_missed_fault_makes_a_met_run_inconclusive_naming_the_fault() -> None:
    run = judged([*completed("t0", 0), missed_fault(0, "kill_child")])

    assert run.unmet == []
    assert run.status == INCONCLUSIVE
    assert run.reason == ("fault 0 (kill_child) missed: no running attempt of the target task")


def test_an_injection_error_is_inconclusive_even_with_unmet_expectations() -> None:
    failed = missed_fault(1, "pause") | {"status": "injection_error", "detail": "OSError: boom"}
    run = judged([failed])  # no task completed: ok expected 1, got 0

    assert run.status == INCONCLUSIVE
    assert run.reason.startswith("fault 1 (pause) injection_error: OSError: boom; also unmet: ok:")


def test_every_fault_injected_and_expectations_met_is_passed() -> None:
    injected = missed_fault() | {"status": "injected"}
    assert judged([*completed("t0", 0), injected]).status == PASSED
    assert judged([]).status == FAILED


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([PASSED], 0),
        ([PASSED, INCONCLUSIVE], 3),
        ([INCONCLUSIVE, FAILED, NOT_RUNNABLE], 1),
        ([NOT_RUNNABLE, INCONCLUSIVE], 3),
        ([ERROR, PASSED], 2),
        ([NOT_RUNNABLE], 2),
    ],
)
def test_suite_exit_code_precedence(statuses: list[str], code: int) -> None:
    suite = SuiteResult([result(s) for s in statuses], Path("/tmp"))
    assert suite.exit_code == code


def test_junit_and_summary_report_inconclusive_as_not_passed() -> None:
    run = judged([*completed("t0", 0), missed_fault(0, "kill_child")])
    suite = SuiteResult([run], Path("/tmp/run"))

    root = ET.fromstring(report.junit_xml(suite))
    assert (root.get("errors"), root.get("failures")) == ("1", "0")
    error = root.find("testcase/error")
    assert error is not None and error.get("type") == INCONCLUSIVE
    assert error.get("message") == f"inconclusive: {run.reason}"
    summary = report.markdown_summary(suite)
    assert "0/1 scenarios met their expectations." in summary
    assert "| outcome | inconclusive |" in summary and "fault 0 (kill_child) missed" in summary


# --- the loop records worker exits -------------------------------------------------------


def test_the_loop_records_each_worker_exit_the_backend_reaps() -> None:
    exits = [[WorkerExit("w0@x", 42, None, 9, ["Killed"])], []]
    ledger = Recorder()
    loop = Loop(ReapingPlacement(exits), ledger, [], [], seed=1, log=lambda _: None)  # type: ignore[arg-type]

    loop.step()
    loop.step()

    assert ledger.events == [
        {"type": h.WORKER_EXIT, "worker": "w0@x", "pid": 42, "exitcode": None, "signal": 9,
         "log_tail": ["Killed"]}
    ]  # fmt: skip


# --- secrets -----------------------------------------------------------------------------

SECRET_ENV = {"DATABASE_URL": "postgres://user:secret@h/db", "API_TOKEN": "abc", "LEVEL": "x"}


def test_mask_hides_secret_names_and_url_passwords_only() -> None:
    masked = mask(
        {"env": SECRET_ENV, "broker_url": "redis://:hunter2@h:6379/0", "key": ""}, names=True
    )

    assert masked["env"] == {
        "DATABASE_URL": "postgres://user:***@h/db",
        "API_TOKEN": "***",
        "LEVEL": "x",
    }
    assert masked["broker_url"] == "redis://:***@h:6379/0"
    assert mask(["API_TOKEN=abc", "task_acks_late=true"]) == [
        "API_TOKEN=***",
        "task_acks_late=true",
    ]
    assert mask_text("see redis://127.0.0.1:6379/0 and amqp://u:p@r//") == (
        "see redis://127.0.0.1:6379/0 and amqp://u:***@r//"
    )
    innocent = {"task_default_routing_key": "celery", "keys": ["a"], "author": "me"}
    assert mask(innocent, names=True) == innocent
    assert mask({"key": "email:1", "detail": "redis://u:pw@h/0"}) == {
        "key": "email:1",
        "detail": "redis://u:***@h/0",
    }  # the report's own fields are never judged by name
    assert [secret_name(n) for n in ("apiKey", "AWS_SECRET_ACCESS_KEY", "db_pass", "x_auth")] == [
        True,
        True,
        True,
        True,
    ]


def test_no_report_file_carries_a_secret(tmp_path: Path) -> None:
    run = result(
        FAILED,
        workers={"env": SECRET_ENV},
        celery={"broker_url": "redis://:secret@h/0", "api_token": "abc"},
    )
    run.report_dir = tmp_path / "outcome"
    run.reason = "worker exited: could not connect to postgres://user:secret@h/db"
    history = [
        *completed("t0", 0),
        h.make_event(h.DISPATCH, task_id="t1", task=TASK, index=1, args=["postgres://user:secret@h/db"],
                     kwargs={"API_TOKEN": "abc"}),
    ]  # fmt: skip
    report.write_scenario(run, history)
    report.write_suite(SuiteResult([run], tmp_path))

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"result.json", "history.jsonl", "junit.xml", "summary.md"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "secret" not in text and "abc" not in text, path
    document = json.loads((run.report_dir / "result.json").read_text())
    assert document["config"]["workers"]["env"]["DATABASE_URL"] == "postgres://user:***@h/db"
    assert document["config"]["celery"]["api_token"] == "***"


# --- versions ----------------------------------------------------------------------------


class FixedVersion(RedisBroker):
    """A Redis broker whose server says it runs ``reported`` (no server needed)."""

    def __init__(self, reported: str | None):
        super().__init__(BrokerSpec(), "redis://127.0.0.1:1/0")
        self.reported = reported

    def version(self) -> str | None:
        return self.reported


@dataclass
class BrokerHolder:
    """All ``versions.broker_version`` reads of a placement: its broker."""

    broker: RedisBroker


def test_versions_name_python_the_celery_stack_and_the_broker_server() -> None:
    found = versions.library_versions()
    assert set(found) == {"python", "celery", "kombu", "billiard", "redis-py", "celery_chaos"}
    assert all(found.values())
    assert versions.broker_version(BrokerHolder(FixedVersion("7.2.4"))) == {"broker": "redis 7.2.4"}
    assert versions.broker_version(BrokerHolder(FixedVersion(None))) == {"broker": None}
    nobody = RedisBroker(BrokerSpec(), "redis://127.0.0.1:1/0")  # a real client, refused
    assert versions.broker_version(BrokerHolder(nobody)) == {"broker": None}
    run = result()
    run.versions = found
    assert report.result_document(run)["versions"] == found


# --- command line ------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    from celery_chaos.cli import main
    from click.testing import CliRunner

    return CliRunner().invoke(main, list(args))


def test_list_without_a_path_shows_the_built_in_suite_and_the_fault_kinds() -> None:
    shipped = invoke("list", str(ROOT / "scenarios"))
    built_in = invoke("list")

    assert built_in.exit_code == 0, built_in.output
    assert built_in.stdout == shipped.stdout
    assert "defaults-child-kill" in built_in.stdout
    assert "fault kinds" in built_in.stdout
    assert all(kind in built_in.stdout for kind in FAULTS)


@pytest.mark.parametrize("where", ["a-file", "a-file/below"])
def test_an_impossible_report_dir_exits_2_naming_the_option(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    scenario = ROOT / "scenarios" / "01-defaults-child-kill.yaml"

    run = invoke("run", str(scenario), "--report-dir", str(tmp_path / where))

    assert run.exit_code == 2
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"celery-chaos: error: --report-dir {tmp_path / where}: not a writable")
    assert "==" not in run.stdout  # no scenario started


# --- one direction -----------------------------------------------------------------------

PACKAGE = ROOT / "harness" / "celery_chaos"


def imported_modules(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return found | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_only_the_plugin_imports_pytest_and_reports_never_import_the_run() -> None:
    for path in PACKAGE.rglob("*.py"):
        modules = imported_modules(path)
        if path.name != "pytest_plugin.py":
            assert "pytest" not in modules, path
        if path.parent.name in ("report", "core"):
            assert not any(m.startswith("celery_chaos.run") for m in modules), path


def test_the_nemesis_and_the_watcher_do_not_know_each_other() -> None:
    nemesis = (PACKAGE / "run" / "nemesis.py").read_text(encoding="utf-8")
    watcher = imported_modules(PACKAGE / "run" / "watcher.py")
    assert "Watcher" not in nemesis and "watcher." not in nemesis
    assert not any("nemesis" in m or "faults" in m for m in watcher)
