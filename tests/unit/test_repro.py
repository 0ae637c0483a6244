"""Building a repro: option parsing, the repro file, the scenario it becomes, its invariants."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.core.conclusion import ERROR, NOT_RUNNABLE, SKIPPED, ScenarioResult
from celery_chaos.tools import audit, repro
from celery_chaos.tools.repro import ReproError, ReproSpec, probes

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
    (lock,) = merged.invariants  # the old probe, converted once (merge revalidates the spec)
    assert (lock.name, lock.redis, lock.expect, merged.probes) == ("lock:*", "lock:*", 0, [])


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


def test_old_probes_become_the_invariants_they_mean(tmp_path: Path) -> None:
    """A lock probe must find no key (expect 0); counter, value and SQL probes had no
    expectation: they are reported as counts and never break the repro."""
    path = tmp_path / "repro.yaml"
    path.write_text(
        "probes:\n"
        "  - {name: document lock, redis_key_pattern: 'lock:doc:*', kind: lock}\n"
        "  - {name: ingested, redis_key_pattern: 'stats:*', kind: counter, url: 'redis://r:1/2'}\n"
        "  - {name: docs, sql: 'select id from docs;', url: 'sqlite:///app.db'}\n"
    )
    lock, counter, rows = repro.load_spec(path).invariants
    assert (lock.kind, lock.query, lock.expect, lock.url) == ("redis", "lock:doc:*", 0, None)
    assert (counter.kind, counter.url, counter.expect.min) == ("redis", "redis://r:1/2", 0)
    assert rows.sql == "SELECT count(*) FROM (select id from docs) AS probe"
    assert (rows.url, rows.expect.min, rows.expect.max) == ("sqlite:///app.db", 0, None)


def test_the_scenario_reads_every_invariant_but_the_harness_stores(tmp_path: Path) -> None:
    """services, setup and invariants pass into the scenario; a redis invariant without url
    and without services.redis reads the harness store, which only repro can reach."""
    path = tmp_path / "repro.yaml"
    path.write_text(
        "services: {postgres: {}}\n"
        "setup: [{sql: 'CREATE TABLE documents (id int, backend_lock bool)'}]\n"
        "invariants:\n"
        "  - {name: stuck, sql: 'SELECT count(*) FROM documents WHERE backend_lock', expect: 0}\n"
        "  - {name: lock, redis: 'lock:doc:*', expect: 0}\n"
    )
    wanted = repro.merge(repro.load_spec(path), **BASE)
    scenario = repro.build_scenario(wanted)
    assert scenario.services.postgres is not None and scenario.setup[0].sql is not None
    assert [i.name for i in scenario.invariants] == ["stuck"]
    assert [i.name for i in wanted.invariants if repro.spec.reads_store(wanted, i)] == ["lock"]
    assert scenario.expect["invariant_violations"] == 0 == scenario.expect["result_not_stored"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("setup: [{sql: 'select 1'}]\n", "setup[0].sql: needs services.postgres"),
        ("invariants: [{name: a, sql: 'select 1', expect: 0}]\n", "needs services.postgres"),
        ("invariants: [{name: a, redis: 'k', path: 'p', expect: 0}]\n", "exactly one of"),
        ("invariants: [{name: a, redis: 'k', expect: 0, during: true}]\n", "after the run only"),
    ],
)
def test_repro_app_state_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "repro.yaml"
    path.write_text(text)
    with pytest.raises(ReproError) as error:
        repro.load_spec(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


def test_a_store_invariant_summary_says_held_or_broken() -> None:
    judged = {"value": 1.0, "expect": 0, "held": False, "error": None}
    line = probes.summary(judged, 'lock:doc:1 = "abc" (the repro task)')
    assert line == '1 (expected 0, BROKEN): lock:doc:1 = "abc" (the repro task)'
    assert probes.summary(judged | {"value": 0.0, "held": True}) == "0 (expected 0)"
    unreadable = judged | {"value": None, "error": "refused"}
    assert probes.summary(unreadable) == "unreadable (expected 0, BROKEN): refused"
    assert probes.broken([judged, judged | {"held": True}]) == [judged]


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
