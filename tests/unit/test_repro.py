"""Building a repro: option parsing, the repro file, the scenario it becomes, probe reading."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from celery_chaos.core.conclusion import ERROR, NOT_RUNNABLE, SKIPPED, ScenarioResult
from celery_chaos.tools import audit, repro
from celery_chaos.tools.repro import RedisProbe, ReproError, ReproSpec, SqlProbe, probes

BASE = {"app": "proj.celery:app", "task": "proj.tasks.ingest", "at": "checkpoint:part-2"}


def spec(**changes: object) -> ReproSpec:
    return repro.merge(ReproSpec(), **(BASE | changes))


@pytest.mark.parametrize(
    ("text", "trigger"),
    [
        ("checkpoint:part-2", {"task": 0, "checkpoint": "part-2"}),
        ("checkpoint:a:b", {"task": 0, "checkpoint": "a:b"}),
        ("seconds:2.5", {"at": 2.5}),
        ("seconds:0", {"at": 0.0}),
    ],
)
def test_triggers(text: str, trigger: dict) -> None:
    assert repro.parse_trigger(text) == trigger


@pytest.mark.parametrize("text", ["2.5", "seconds:", "seconds:-1", "seconds:x", "checkpoint:", ""])
def test_bad_triggers_name_the_option(text: str) -> None:
    with pytest.raises(ReproError, match="--at"):
        repro.parse_trigger(text)


def test_set_values_are_json_when_they_parse() -> None:
    settings = repro.parse_settings(
        (
            "task_acks_late=true",
            "worker_prefetch_multiplier=1",
            'broker_transport_options={"visibility_timeout": 5}',
            "task_default_queue=ingest",
        )
    )
    assert settings == {
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {"visibility_timeout": 5},
        "task_default_queue": "ingest",
    }


def test_unknown_setting_suggests_the_right_one() -> None:
    with pytest.raises(ReproError, match="did you mean task_acks_late"):
        repro.parse_settings(("task_ack_late=true",))
    with pytest.raises(ReproError, match="KEY=VALUE"):
        repro.parse_settings(("task_acks_late",))


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "repro.yaml"
    path.write_text(
        "app: a:app\ntask: t\nat: seconds:1\ncelery: {task_acks_late: true}\nenv: {A: '1'}\n"
        "probes: [{redis_key_pattern: 'lock:*', kind: lock}]\n"
    )
    merged = repro.merge(
        repro.load_spec(path), at="checkpoint:x", celery={"worker_prefetch_multiplier": 1}
    )
    assert merged.at == "checkpoint:x" and merged.app == "a:app"
    assert merged.celery == {"task_acks_late": True, "worker_prefetch_multiplier": 1}
    assert isinstance(merged.probes[0], RedisProbe) and merged.probes[0].kind == "lock"


def test_repro_file_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "repro.yaml"
    path.write_text("probes: [{redis_key_pattern: 'x', kind: gauge}]\n")
    with pytest.raises(ReproError, match=str(path)):
        repro.load_spec(path)
    path.write_text("fault: explode\n")
    with pytest.raises(ReproError, match="fault"):
        repro.load_spec(path)
    path.write_text("probes: [{sql: 'select 1', url: 'postgres://db'}]\n")
    with pytest.raises(ReproError):
        repro.load_spec(path)


def test_required_options() -> None:
    with pytest.raises(ReproError, match="--app: required"):
        repro.merge(ReproSpec(), task="t", at="seconds:1")


def test_scenario_runs_the_users_app_with_only_the_overrides() -> None:
    scenario = repro.build_scenario(spec(celery={"task_acks_late": True}, env={"X": "1"}))
    assert scenario.workers.app == "celery_chaos.agent.bootstrap"
    assert scenario.workers.env == {"X": "1", "CHAOS_APP": "proj.celery:app"}
    assert scenario.celery == {"task_acks_late": True}
    assert scenario.workload[0].task == "proj.tasks.ingest"
    assert [f.kind for f in scenario.faults] == ["kill_child"]
    assert scenario.faults[0].when.checkpoint == "part-2" and scenario.faults[0].when.task == 0
    assert scenario.expect["lost"] == 0 and scenario.name == "repro-proj.tasks.ingest"


def test_nothing_is_overridden_by_default() -> None:
    assert repro.build_scenario(spec()).celery == {}


def test_worker_kill_gets_a_replacement_and_seconds_target_the_task() -> None:
    scenario = repro.build_scenario(spec(fault="kill_worker", at="seconds:2.5"), queue="ingest")
    kill, start = scenario.faults
    assert kill.when.at == 2.5 and kill.target.task == 0
    assert start.kind == "start_worker" and start.when.after_fault == 0
    assert scenario.workload[0].options.queue == "ingest"


def test_lock_summary_names_the_repro_task() -> None:
    probe = RedisProbe(redis_key_pattern="lock:*", kind="lock")
    held = probes._summary(probe, {"lock:doc:1": "abc"}, "abc")
    assert held == "HELD: lock:doc:1 = abc (the repro task)"
    assert probes._summary(probe, {}, "abc").startswith("free")
    counter = RedisProbe(redis_key_pattern="emails:*", kind="counter")
    assert probes._summary(counter, {"emails:a": 2, "emails:b": 1}, None).startswith("emails:* = 3")


def test_sql_probe_reads_read_only(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "app.db") as db:
        db.execute("create table docs (id integer, status text)")
        db.execute("insert into docs values (42, 'ingesting')")
    probe = SqlProbe(sql="select id, status from docs", url="sqlite:///app.db")
    result = repro.read_sql_probe(probe, tmp_path)
    assert result["rows"] == [[42, "ingesting"]] and result["summary"] == "id=42, status=ingesting"
    writing = SqlProbe(sql="delete from docs", url="sqlite:///app.db")
    assert "error" in repro.read_sql_probe(writing, tmp_path)


def test_a_run_that_could_not_start_is_not_run_with_a_docker_hint(tmp_path: Path) -> None:
    scenario = repro.build_scenario(spec())
    result = ScenarioResult(
        scenario,
        ERROR,
        seed=1,
        backend="docker",
        report_dir=tmp_path,
        reason="worker container exited: ModuleNotFoundError: No module named 'proj'",
    )
    view = repro.AppView(settings={}, policy=None, queue=None)  # type: ignore[arg-type]
    verdict = repro.verdict_of(result, spec(), view)
    assert verdict.code == "NOT RUN" and verdict.exit_code == 2
    assert "--worker-image must contain your app" in verdict.headline


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("amqp://guest@rabbit//", "rabbitmq"),
        ("pyamqp://rabbit//", "rabbitmq"),
        (None, "rabbitmq"),  # Celery's default broker is RabbitMQ
        ("redis://cache:6379/0", "redis"),
        ("rediss://cache:6380/0", "redis"),
        ("sqs://", None),
    ],
)
def test_broker_kind_follows_the_apps_broker_url(url: str | None, kind: str | None) -> None:
    assert audit.broker_kind(url) == kind


def test_repro_starts_the_apps_broker_kind_unless_told() -> None:
    from celery_chaos.tools.repro.app import AppView, broker_choice

    view = AppView({"broker_url": "amqp://guest@prod-rabbit//"}, None, None)  # type: ignore[arg-type]
    assert broker_choice(spec(), view) == ("rabbitmq", "your app's broker_url is amqp://")
    assert broker_choice(spec(broker="redis"), view) == ("redis", "--broker redis")
    sqs = AppView({"broker_url": "sqs://"}, None, None)  # type: ignore[arg-type]
    assert broker_choice(spec(), sqs)[0] == "redis"
    assert repro.build_scenario(spec(), broker="rabbitmq").broker.kind == "rabbitmq"


CHAIN = {"chain": [{"task": "proj.tasks.a"}, {"task": "proj.tasks.b"}, {"task": "proj.tasks.c"}]}


def test_a_workflow_repro_aims_the_fault_at_its_member() -> None:
    wanted = spec(task=None, workflow=CHAIN, member=1)
    assert wanted.task == "proj.tasks.b"  # the member's task: its settings are the ones shown
    scenario = repro.build_scenario(wanted, workload=CHAIN)
    (fault,) = scenario.faults
    assert fault.when.task == 1 and fault.target.task == 1 and fault.when.checkpoint == "part-2"
    assert scenario.results is not None and scenario.task_count == 3
    assert scenario.expect["workflow_broken"] == 0  # a broken workflow fails the repro


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"workflow": CHAIN, "member": 3}, "--member 3: the workflow has 3 tasks (0-2)"),
        ({"workflow": {"task": "proj.tasks.a"}}, "workflow: expected a chain, group or chord"),
        ({"workflow": {"chain": []}}, "workflow.chain: List should have at least 1 item"),
    ],
)
def test_bad_workflow_repro_names_the_option(changes: dict, message: str) -> None:
    with pytest.raises(ReproError) as error:
        spec(**changes)
    assert message in str(error.value)


def test_the_repro_page_says_what_the_console_says_and_no_expectation(tmp_path: Path) -> None:
    """report.html of a repro: the verdict sentence, its reasons, the settings and the probes
    the console prints; not the internal expectations the user never wrote."""
    import json

    from celery_chaos.report.html import write_scenario_html

    document = {
        "scenario": "repro-ingest",
        "status": "failed",
        "reason": "",
        "expectations": [{"verdict": "lost", "wanted": "== 0", "actual": 1, "met": False}],
        "verdicts": {"lost": 1, "ok": 0, "failed": 1},
        "tasks": [{"task_id": "t1", "index": 0, "task": "ingest", "outcome": "lost",
                   "verdicts": ["lost", "failed"], "attempts": []}],
        "explanations": ["lost #0 ingest[t1]: the message was acknowledged <early>"],
        "repro": {"verdict": "LOST", "headline": "LOST: the task never completed.",
                  "reasons": ["task_acks_late=False (Celery default): acknowledged <early>"],
                  "settings": ["acks_late=False, reject_on_worker_lost=False"],
                  "task": "ingest", "app": "app:app", "fault": "kill_child", "at": "1",
                  "broker": "redis", "exit_code": 1},
        "probes": [{"name": "document lock", "kind": "redis", "summary": "HELD: lock:doc:42"}],
    }  # fmt: skip
    (tmp_path / "result.json").write_text(json.dumps(document))
    page = write_scenario_html(tmp_path).read_text()
    assert "LOST: the task never completed." in page
    assert "because task_acks_late=False (Celery default): acknowledged &lt;early&gt;" in page
    assert "acks_late=False, reject_on_worker_lost=False" in page
    assert "document lock (redis): HELD: lock:doc:42" in page
    assert "the message was acknowledged &lt;early&gt;" in page  # the anomaly's why
    assert "Unmet" not in page and 'id="expectations"' not in page
    assert "Your app's own configuration" in page and "Celery's defaults" not in page


def test_the_repro_states_the_sweep_as_the_installed_kombu_runs_it(monkeypatch) -> None:
    """Kombu before 5.7 ignores unacked_restore_interval/throttle: the settings line says so,
    as audit and the explanation lines (result.versions) do, never a 1 s sweep it does not run."""
    from celery_chaos.tools.repro import verdict
    from celery_chaos.tools.repro.app import AppView

    transport = {"visibility_timeout": 15, "unacked_restore_interval": 1}
    view = AppView({"broker_transport_options": transport}, None, None)  # type: ignore[arg-type]
    monkeypatch.setattr(verdict, "installed_kombu", lambda: "5.6.2")
    assert "Kombu before 5.7 ignores both options" in verdict._visibility(view)
    monkeypatch.setattr(verdict, "installed_kombu", lambda: "5.7.0")
    assert "restore sweep every 10s" in verdict._visibility(view)


def test_audit_repro_and_explain_state_the_visibility_timeout_in_one_wording(monkeypatch) -> None:
    """One builder in the core (Sweep.visibility_with_sweep): audit's and repro's settings lines
    say the timeout and the sweep in the same words (a 15.0 no longer reads 15.0s in one, 15s
    in the other)."""
    from celery_chaos.core.explain_facts import sweep_of
    from celery_chaos.tools.audit import settings as audit_settings
    from celery_chaos.tools.audit.findings import visibility_text as audit_visibility
    from celery_chaos.tools.repro import verdict
    from celery_chaos.tools.repro.app import AppView

    monkeypatch.setattr(verdict, "installed_kombu", lambda: "5.7.0")
    monkeypatch.setattr(audit_settings, "installed_kombu", lambda: "5.7.0")
    for transport in ({"visibility_timeout": 15.0, "unacked_restore_interval": 1}, {}):
        shared = sweep_of(transport, "5.7.0").visibility_with_sweep()
        view = AppView({"broker_transport_options": transport}, None, None)  # type: ignore[arg-type]
        ctx = audit_settings.context({"broker_transport_options": transport}, {}, (5, 5), None)
        assert verdict._visibility(view) == shared == audit_visibility(ctx)


def test_the_repro_explanations_mask_secrets_as_every_report_does(tmp_path: Path) -> None:
    """A password in a URL quoted by a line (here a worker's exit reason) is masked, as
    report.explained.fill masks a run's lines: the repro's lines go to the same artifacts."""
    import json

    from celery_chaos.core import history as h
    from celery_chaos.core.broker_state import BrokerState
    from celery_chaos.core.checker import check
    from celery_chaos.core.conclusion import FAILED, ScenarioResult
    from celery_chaos.core.scenario import parse_scenario
    from celery_chaos.tools.repro import verdict
    from celery_chaos.tools.repro.app import AppView

    reason = "ConnectionError to redis://app:hunter2@cache:6379/0"
    history: list[dict] = [
        {"type": h.DISPATCH, "ts": 0.0, "task_id": "a", "task": "t", "index": 0},
        {"type": h.RUN_END, "ts": 9.0, "reason": "deadline"},
    ]
    for n in range(1, 8):
        history.insert(-1, {"type": h.ATTEMPT_START, "ts": n, "task_id": "a", "task": "t",
                            "attempt": n, "worker": "w0", "pid": 100})  # fmt: skip
        history.insert(-1, {"type": h.PROCESS_EXIT, "ts": n + 0.5, "task_id": "a",
                            "attempt": n, "pid": 100, "reason": reason})  # fmt: skip
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in history))
    scenario = parse_scenario({"name": "r", "description": "r", "workload": [{"task": "t"}]}, "r")
    result = ScenarioResult(scenario, FAILED, 1, "local", tmp_path)
    result.verdicts = check(history, BrokerState(locations={"a": ["queue:celery"]}))
    settings = dict(audit.CELERY_DEFAULTS)
    view = AppView(settings, audit.resolve_task("t", {}, settings), None)
    verdict.explain_with_app_settings(result, view)
    assert any("redis://app:***@cache" in line for line in result.explanations)
    assert not any("hunter2" in line for line in result.explanations)


def test_a_repro_with_a_missing_extra_is_not_runnable_with_the_hint(tmp_path: Path) -> None:
    """The run reports a missing gevent/eventlet ``skipped``; a repro asked for that pool, so
    it is ``not_runnable`` (exit 2) with the install hint, not an ``error`` of the environment."""
    from celery_chaos.tools.repro.run import ReproRun, align_status

    hint = "workers.pool gevent: not installed (pip install 'celery-chaos[gevent]')"
    result = ScenarioResult(
        repro.build_scenario(spec()), SKIPPED, 1, "local", tmp_path, reason=hint
    )
    view = repro.AppView(settings={}, policy=None, queue=None)  # type: ignore[arg-type]
    trial = ReproRun(result, repro.verdict_of(result, spec(), view), [], [], tmp_path)
    align_status(trial)
    assert (result.status, result.reason, trial.exit_code) == (NOT_RUNNABLE, hint, 2)
    assert trial.verdict.headline == f"NOT RUN: {hint}" and "\n" not in trial.verdict.headline
