"""``celery-chaos repro``: kill *your* app's worker mid-task and say what your configuration does.

The repro is an ordinary scenario built in code: workers run ``celery_chaos.agent.bootstrap`` with
``CHAOS_APP=<your app>`` (your module, your settings, instrumented without edits), the workload is
your task, the fault is the one asked for, and it runs through
:func:`celery_chaos.run.runner.run_scenario`:
the same backend, nemesis, watcher and checker as the suite. Nothing in your configuration is
overridden unless asked with ``--set``; only the broker URL is replaced by the harness's own
Redis broker (the harness must own the broker to inspect and fault it).

Probes read the state your task leaves behind (lock keys, document rows) after the run, once the
workers are frozen, from the harness store (``celery_chaos.store()``, the ledger Redis) or a URL.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import redis
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from celery_chaos.backends import Backend
from celery_chaos.core.fault_kinds import repro_kinds
from celery_chaos.core.scenario import Scenario, first_error
from celery_chaos.report.mask import mask_report
from celery_chaos.run import runner
from celery_chaos.run.runner import ERROR, FAILED, NOT_RUNNABLE, RunOptions, ScenarioResult
from celery_chaos.tools import audit

FaultKind = Literal[
    "kill_child", "kill_worker", "restart_worker", "oom", "terminate", "quit", "restart_broker"
]
FAULTS: tuple[str, ...] = repro_kinds()
# Faults after which the killed worker is gone: a replacement is started so a redelivered message
# has somewhere to run (as a process supervisor or Kubernetes would do).
NEEDS_REPLACEMENT = ("kill_worker", "terminate", "quit")
REPLACEMENT_DELAY = 0.5
# The repro "passes" only when the task came through exactly once and left nothing stuck.
EXPECT = {
    "lost": 0,
    "pending": 0,
    "duplicate_executions": 0,
    "failed": 0,
    "redelivery_loop": 0,
    "duplicate_side_effects": 0,
    "stuck_locks": 0,
}
PROBE_KEY_LIMIT = 100
SQL_ROW_LIMIT = 100
CLIENT_DEFAULT_QUEUE = "celery"
EXIT_OK, EXIT_UNSAFE, EXIT_UNUSABLE = 0, 1, 2


class ReproError(ValueError):
    """The repro cannot be set up or carried out; the message says which input and why."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedisProbe(Strict):
    """Keys matching a pattern in a Redis: ``lock`` (held or free), ``counter`` (sum), ``value``."""

    redis_key_pattern: str = Field(min_length=1)
    kind: Literal["lock", "counter", "value"] = "value"
    url: str | None = None  # default: the harness store, what celery_chaos.store() returns
    name: str | None = None


class SqlProbe(Strict):
    """Rows of one read-only query against a SQLite database (``sqlite:///path``)."""

    sql: str = Field(min_length=1)
    url: str = Field(pattern=r"^sqlite:///")
    name: str | None = None


class ReproSpec(Strict):
    """A repro file (``--file``): probes, and optionally defaults for every command-line option."""

    app: str | None = None
    task: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    fault: FaultKind = "kill_child"
    at: str | None = None
    celery: dict[str, Any] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    workers: int = Field(default=1, ge=1)
    concurrency: int = Field(default=2, ge=1)
    pool: Literal["prefork", "solo", "threads"] = "prefork"
    timeout: float = Field(default=60.0, gt=0)
    probes: list[RedisProbe | SqlProbe] = Field(default_factory=list)


# --- inputs ------------------------------------------------------------------------------------


def parse_json_value(text: str) -> Any:
    """``true``/``5``/``{"a": 1}`` as JSON, anything else as the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ReproError(f"{option} {text!r}: expected KEY=VALUE")
    return key.strip(), value


def known_setting(key: str, source: str = "--set") -> None:
    """Refuse an override Celery does not know: a typo would silently test nothing."""
    from celery.app.defaults import DEFAULTS

    if key in DEFAULTS:
        return
    close = difflib.get_close_matches(key, DEFAULTS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ReproError(f"{source} {key}: not a Celery setting{hint}")


def parse_settings(items: tuple[str, ...]) -> dict[str, Any]:
    settings = {}
    for item in items:
        key, value = parse_assignment(item, "--set")
        known_setting(key)
        settings[key] = parse_json_value(value)
    return settings


def parse_trigger(text: str) -> dict[str, Any]:
    """``checkpoint:NAME`` or ``seconds:2.5`` as a scenario trigger aimed at the task."""
    kind, sep, value = text.partition(":")
    if sep and kind == "checkpoint" and value:
        return {"task": 0, "checkpoint": value}
    if sep and kind == "seconds":
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return {"at": seconds}
    raise ReproError(f"--at {text!r}: expected checkpoint:NAME or seconds:S (e.g. seconds:2.5)")


def _validated(data: Any, source: str) -> ReproSpec:
    if not isinstance(data, dict):
        raise ReproError(f"{source}: expected a mapping (probes: [...], app: ..., ...)")
    try:
        return ReproSpec.model_validate(data)
    except ValidationError as error:
        raise ReproError(f"{source}: {first_error(error)}") from None


def load_spec(path: Path | None) -> ReproSpec:
    if path is None:
        return ReproSpec()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ReproError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ReproError(f"{path}: not valid YAML ({error})") from None
    return _validated(data, str(path))


def merge(spec: ReproSpec, **given: Any) -> ReproSpec:
    """The file's values overridden by the options given on the command line (not None)."""
    data = spec.model_dump()
    for key, value in given.items():
        if value is None:
            continue
        data[key] = data[key] | value if key in ("celery", "env") else value
    merged = _validated(data, "command line")
    for name in ("app", "task", "at"):
        if getattr(merged, name) is None:
            raise ReproError(f"--{name}: required (on the command line or in --file)")
    for key in merged.celery:
        known_setting(key, "celery:")
    parse_trigger(merged.at or "")
    return merged


# --- the user's app, in this process ------------------------------------------------------------


@dataclass
class AppView:
    """What the harness learned by importing the app: its settings as the workers will see them."""

    settings: dict[str, Any]
    policy: audit.TaskPolicy
    queue: str | None


def _consumed_queue(app: Any, task: str, args: list[Any], kwargs: dict[str, Any]) -> str | None:
    """The queue to publish to so a worker started without ``-Q`` consumes it: the task's route
    when a worker consumes that queue, else the app's default queue (None: the client's own)."""
    try:
        consumed = list(app.amqp.queues.keys())
        route = app.amqp.router.route({}, task, args, kwargs)
        name = route["queue"].name
    except Exception:  # an unusual router: fall back to the default queue
        consumed, name = [], None
    if name not in consumed:
        name = app.conf.task_default_queue
    return None if name == CLIENT_DEFAULT_QUEUE else name


def inspect_app(spec: ReproSpec, cwd: Path) -> AppView:
    """Import the app like the workers will (same env, same overrides) and find the task."""
    os.environ.update(spec.env)
    try:
        app = audit.import_app(spec.app or "", cwd)
    except audit.AppImportError as error:
        raise ReproError(f"--app {error}") from None
    app.conf.update(spec.celery)
    tasks = audit.user_tasks(app)
    if spec.task not in tasks:
        names = ", ".join(sorted(tasks)) or "none"
        raise ReproError(f"--task {spec.task}: not registered in {spec.app} (registered: {names})")
    collected = audit.collect(app)
    settings = audit.effective_config(collected.config)
    policy = audit.resolve_task(spec.task, collected.tasks[spec.task], settings)
    queue = _consumed_queue(app, spec.task, spec.args, spec.kwargs)
    return AppView(settings, policy, queue)


# --- the scenario --------------------------------------------------------------------------------


def scenario_name(task: str) -> str:
    return "repro-" + (re.sub(r"[^a-z0-9_.-]+", "-", task.lower()).strip("-.") or "task")


def build_scenario(spec: ReproSpec, queue: str | None = None) -> Scenario:
    """The repro as a scenario: your app via celery_chaos.agent.bootstrap, your task, one fault."""
    trigger = parse_trigger(spec.at or "")
    faults: list[dict[str, Any]] = [{"kind": spec.fault, "when": trigger, "target": {"task": 0}}]
    if spec.fault in NEEDS_REPLACEMENT:
        faults.append(
            {"kind": "start_worker", "when": {"after_fault": 0, "delay": REPLACEMENT_DELAY}}
        )
    options = {"queue": queue} if queue else {}
    return Scenario.model_validate(
        {
            "name": scenario_name(spec.task or ""),
            "description": f"repro: {spec.task} in {spec.app}, {spec.fault} at {spec.at}",
            "celery": spec.celery,
            "workers": {
                "count": spec.workers,
                "concurrency": spec.concurrency,
                "pool": spec.pool,
                "app": "celery_chaos.agent.bootstrap",
                "env": {**spec.env, "CHAOS_APP": spec.app},
            },
            "workload": [
                {"task": spec.task, "args": spec.args, "kwargs": spec.kwargs, "options": options}
            ],
            "faults": faults,
            "expect": EXPECT,
            "timeout": spec.timeout,
        }
    )


# --- probes --------------------------------------------------------------------------------------


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def read_key(client: redis.Redis, key: bytes) -> Any:
    """A key's value whatever its type (string, hash, list, set, sorted set)."""
    kind = client.type(key).decode()
    if kind == "string":
        return _decode(client.get(key))
    if kind == "hash":
        return {_decode(k): _decode(v) for k, v in sorted(client.hgetall(key).items())}
    if kind == "list":
        return [_decode(v) for v in client.lrange(key, 0, PROBE_KEY_LIMIT - 1)]
    if kind == "set":
        return sorted(str(_decode(v)) for v in client.smembers(key))
    if kind == "zset":
        return [[_decode(m), s] for m, s in client.zrange(key, 0, PROBE_KEY_LIMIT - 1, True)]
    return None


def _summary(probe: RedisProbe, keys: dict[str, Any], task_id: str | None) -> str:
    if probe.kind == "lock":
        if not keys:
            return f"free: no key matches {probe.redis_key_pattern}"
        owners = [
            f"{key} = {value}" + (" (the repro task)" if value == task_id else "")
            for key, value in keys.items()
        ]
        return "HELD: " + "; ".join(owners)
    if probe.kind == "counter":
        total = sum(v for v in keys.values() if isinstance(v, int))
        return f"{probe.redis_key_pattern} = {total}" + (
            " (" + ", ".join(f"{k}={v}" for k, v in keys.items()) + ")" if keys else ""
        )
    if not keys:
        return f"no key matches {probe.redis_key_pattern}"
    return "; ".join(f"{key} = {json.dumps(value, default=str)}" for key, value in keys.items())


def read_redis_probe(
    probe: RedisProbe, store: redis.Redis | None, task_id: str | None
) -> dict[str, Any]:
    client = redis.Redis.from_url(probe.url) if probe.url else store
    source = audit.redact(probe.url) if probe.url else "harness store"
    result: dict[str, Any] = {
        "name": probe.name or probe.redis_key_pattern,
        "kind": probe.kind,
        "pattern": probe.redis_key_pattern,
        "source": source,
    }
    if client is None:
        return result | {"error": "the harness store was not started", "summary": "unavailable"}
    try:
        found = sorted(client.scan_iter(match=probe.redis_key_pattern, count=1000))
        keys = {key.decode(errors="replace"): read_key(client, key) for key in found}
    except redis.RedisError as error:
        return result | {"error": str(error), "summary": f"unavailable: {error}"}
    keys = dict(list(keys.items())[:PROBE_KEY_LIMIT])
    result |= {"keys": keys, "summary": _summary(probe, keys, task_id)}
    if probe.kind == "lock":
        result["held"] = bool(keys)
    if probe.kind == "counter":
        result["total"] = sum(v for v in keys.values() if isinstance(v, int))
    return result


def sqlite_path(url: str, cwd: Path) -> Path:
    path = Path(url.removeprefix("sqlite:///"))
    return path if path.is_absolute() else cwd / path


def read_sql_probe(probe: SqlProbe, cwd: Path) -> dict[str, Any]:
    """Rows of the query, opened read-only so a probe can never change what it observes."""
    path = sqlite_path(probe.url, cwd)
    result: dict[str, Any] = {"name": probe.name or probe.sql, "kind": "sql", "source": probe.url}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            cursor = db.execute(probe.sql)
            columns = [c[0] for c in cursor.description or []]
            rows = [list(row) for row in cursor.fetchmany(SQL_ROW_LIMIT)]
    except sqlite3.Error as error:
        return result | {"error": str(error), "summary": f"unavailable: {error}"}
    shown = "; ".join(
        ", ".join(f"{c}={v}" for c, v in zip(columns, row, strict=False)) for row in rows
    )
    return result | {"columns": columns, "rows": rows, "summary": shown or "no rows"}


def read_probes(
    probes: list[RedisProbe | SqlProbe], store: redis.Redis | None, task_id: str | None, cwd: Path
) -> list[dict[str, Any]]:
    return [
        read_sql_probe(p, cwd) if isinstance(p, SqlProbe) else read_redis_probe(p, store, task_id)
        for p in probes
    ]


def snapshot_probes(spec: ReproSpec, backend: Backend, cwd: Path) -> list[dict[str, Any]]:
    """Read every probe against this backend's store; never raises (it runs inside close())."""
    from celery_chaos.core import history as h

    store = backend.ledger.client if backend.ledger is not None else None
    try:
        events = backend.ledger.read_all() if backend.ledger is not None else []
        task_id = next((e["task_id"] for e in events if e["type"] == h.DISPATCH), None)
        return read_probes(spec.probes, store, task_id, cwd)
    except Exception as error:  # a probe must not turn a finished run into a crash
        return [{"name": "probes", "error": f"{type(error).__name__}: {error}"}]


# --- the verdict ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    code: str  # LOST, PENDING, RECOVERED, DUPLICATED, OK, NOT HIT, NOT RUN
    headline: str
    reasons: list[str] = field(default_factory=list)
    exit_code: int = EXIT_OK


def _value(view: AppView, key: str, overrides: dict[str, Any]) -> str:
    value = view.settings[key]
    note = " (--set)" if key in overrides else ""
    if not note and value == audit.CELERY_DEFAULTS.get(key):
        note = " (Celery default)"
    return f"{key}={value!r}{note}"


def _task_value(view: AppView, option: str, overrides: dict[str, Any]) -> str:
    """A task option as the task had it: its own value, else the app setting it inherits."""
    if option in view.policy.own:
        return f"{option}={getattr(view.policy, option)!r} (set on the task)"
    return _value(view, audit.TASK_OPTIONS[option], overrides)


def _visibility(view: AppView, overrides: dict[str, Any] | None = None) -> str:
    transport = view.settings.get("broker_transport_options") or {}
    value = transport.get("visibility_timeout")
    if not value:
        return "visibility_timeout=3600s (Kombu default)"
    return f"visibility_timeout={value}s" + (
        " (--set)" if "broker_transport_options" in (overrides or {}) else ""
    )


def _visibility_seconds(view: AppView) -> float:
    transport = view.settings.get("broker_transport_options") or {}
    return float(transport.get("visibility_timeout") or audit.REDIS_DEFAULT_VISIBILITY_TIMEOUT)


def _fault_event(result: ScenarioResult) -> dict[str, Any] | None:
    faults = result.verdicts.faults if result.verdicts else []
    return next((f for f in faults if f.get("fault") == 0 and f.get("fired", True)), None)


def _not_hit(result: ScenarioResult, spec: ReproSpec) -> Verdict | None:
    fault = _fault_event(result)
    if fault is None:
        trigger = parse_trigger(spec.at or "")
        hint = (
            f"the task never reached checkpoint {trigger['checkpoint']!r}: does it call"
            f" celery_chaos.checkpoint({trigger['checkpoint']!r})?"
            if "checkpoint" in trigger
            else "the run ended before the fault was due"
        )
        return Verdict("NOT HIT", f"NOT HIT: the fault never fired: {hint}", [], EXIT_UNUSABLE)
    if fault.get("status") != "injected":
        detail = f"{fault.get('status')}: {fault.get('detail')}"
        hint = " (was the task still running? try an earlier --at or a checkpoint)"
        return Verdict("NOT HIT", f"NOT HIT: the fault was {detail}{hint}", [], EXIT_UNUSABLE)
    return None


def _why_lost(view: AppView, spec: ReproSpec, task: Any, overrides: dict[str, Any]) -> list[str]:
    policy = view.policy
    rerun_failed = [a for a in task.attempts[1:] if a.state == "FAILURE"]
    if rerun_failed:
        raised = ", ".join(f for f in task.failures if f != "WorkerLostError") or "an error"
        return [
            f"the message was redelivered, but attempt {rerun_failed[-1].attempt} failed"
            f" ({raised}): the task is not safe to run again (a lock it took itself, a"
            " half-written record), so the redelivery could not finish it"
        ]
    if spec.fault == "restart_broker":
        return ["the broker restarted without persistence: queued messages vanished with it"]
    if not policy.acks_late:
        return [
            f"{_task_value(view, 'acks_late', overrides)}: the message was acknowledged before"
            " the task ran, so the broker forgot it when the process died"
        ]
    if not policy.reject_on_worker_lost:
        return [
            f"{_task_value(view, 'acks_late', overrides)} but"
            f" {_task_value(view, 'reject_on_worker_lost', overrides)}: when the pool process died"
            " the worker acknowledged the message and marked the task failed (WorkerLostError)"
        ]
    return ["the message left the broker without the task completing; see history.jsonl"]


def _why_pending(view: AppView, task: Any, overrides: dict[str, Any]) -> list[str]:
    if "unacked" in task.in_broker:
        reasons = [
            f"{_visibility(view, overrides)}: the whole worker died, so nobody rejected the"
            " message; it sits in Redis's unacked set and runs again only after the visibility"
            " timeout"
        ]
        if view.settings["worker_prefetch_multiplier"] > 1:
            reasons.append(
                f"{_value(view, 'worker_prefetch_multiplier', overrides)}: prefetched messages of"
                " a dead worker wait for the visibility timeout too"
            )
        return reasons
    return [f"its message waits in {', '.join(task.in_broker) or 'a running attempt'}"]


def _why_recovered(view: AppView, spec: ReproSpec, overrides: dict[str, Any]) -> list[str]:
    if spec.fault in ("kill_child", "oom"):
        return [
            f"{_task_value(view, 'acks_late', overrides)} +"
            f" {_task_value(view, 'reject_on_worker_lost', overrides)}: the worker requeued the"
            " message when its pool process died, and the task ran again"
        ]
    return [
        f"{_task_value(view, 'acks_late', overrides)} and {_visibility(view, overrides)}: the"
        " dead worker's unacked message was restored to a live worker"
    ]


def judge(result: ScenarioResult, spec: ReproSpec, view: AppView) -> Verdict:
    """The plain-language verdict for the one task of a repro, with the settings behind it."""
    if result.status in (NOT_RUNNABLE, ERROR) or result.verdicts is None:
        hint = (
            "; with --backend docker the --worker-image must contain your app (see README)"
            if result.backend == "docker" and "ModuleNotFoundError" in result.reason
            else ""
        )
        return Verdict("NOT RUN", f"NOT RUN: {result.reason}{hint}", [], EXIT_UNUSABLE)
    missed = _not_hit(result, spec)
    if missed is not None:
        return missed
    task = result.verdicts.tasks[0]
    overrides = spec.celery
    successes = sum(1 for a in task.attempts if a.state == "SUCCESS")
    exit_code = EXIT_UNSAFE if result.status == FAILED else EXIT_OK
    if task.outcome == "lost":
        failed = f" Celery marked it failed ({', '.join(task.failures)})." if task.failures else ""
        headline = (
            "LOST: the task never completed and is not in the broker: nothing will run it again."
        )
        return Verdict("LOST", headline + failed, _why_lost(view, spec, task, overrides), exit_code)
    if task.outcome == "pending":
        headline = "PENDING: the task did not complete; its message is still in the broker"
        if "unacked" in task.in_broker:
            seconds = _visibility_seconds(view)
            headline += (
                f" (unacked) and runs again only after the visibility timeout ({seconds:g}s)"
            )
        headline += "."
        return Verdict("PENDING", headline, _why_pending(view, task, overrides), exit_code)
    if task.outcome == "duplicate_executions":
        headline = f"DUPLICATED: the task completed {successes} times."
        reasons = [
            f"{_visibility(view, overrides)} is shorter than the task ran: Redis handed the"
            " still-running message to another worker"
        ]
        return Verdict("DUPLICATED", headline, reasons, exit_code)
    if task.outcome == "recovered":
        headline = (
            f"RECOVERED: the killed attempt was redelivered and the task completed once"
            f" ({len(task.attempts)} attempts)."
        )
        return Verdict("RECOVERED", headline, _why_recovered(view, spec, overrides), exit_code)
    headline = "OK: the task completed in one attempt; the fault did not interrupt it."
    return Verdict("OK", headline, [], exit_code)


def settings_lines(view: AppView, overrides: dict[str, Any]) -> list[str]:
    """The settings that decide a task's fate when its worker dies, as the workers had them."""
    policy = view.policy
    own = f" (task {policy.name} sets {', '.join(sorted(policy.own))})" if policy.own else ""
    given = [f"--set {key}={json.dumps(value)}" for key, value in overrides.items()]
    return given + [
        f"acks_late={policy.acks_late}, reject_on_worker_lost={policy.reject_on_worker_lost},"
        f" retry_on_worker_lost={policy.retry_on_worker_lost}{own}",
        _visibility(view),
        _value(view, "worker_prefetch_multiplier", overrides),
        f"time_limit={policy.time_limit}, soft_time_limit={policy.soft_time_limit}",
    ]


# --- running it ----------------------------------------------------------------------------------


@dataclass
class ReproOutcome:
    result: ScenarioResult
    verdict: Verdict
    probes: list[dict[str, Any]]
    settings: list[str]
    run_dir: Path

    @property
    def exit_code(self) -> int:
        held = any(p.get("held") for p in self.probes)
        if self.verdict.exit_code == EXIT_OK and held:
            return EXIT_UNSAFE
        return self.verdict.exit_code


def _align_status(outcome: ReproOutcome) -> None:
    """Make the scenario status (junit, summary.md) say what the exit code says."""
    result, verdict = outcome.result, outcome.verdict
    if verdict.exit_code == EXIT_UNUSABLE and result.status not in (NOT_RUNNABLE, ERROR):
        result.status, result.reason = ERROR, verdict.headline
    elif outcome.exit_code == EXIT_UNSAFE and result.status != FAILED:
        held = [p["summary"] for p in outcome.probes if p.get("held")]
        result.status, result.reason = FAILED, "lock probe still held: " + "; ".join(held)


def _write(outcome: ReproOutcome, spec: ReproSpec) -> None:
    """Add the verdict and the probes to result.json, and write the run's junit/summary."""
    _align_status(outcome)
    path = outcome.result.report_dir / "result.json"
    document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    document["status"], document["reason"] = outcome.result.status, outcome.result.reason
    verdict = outcome.verdict
    document["repro"] = {
        "app": spec.app,
        "task": spec.task,
        "fault": spec.fault,
        "at": spec.at,
        "overrides": spec.celery,
        "verdict": verdict.code,
        "headline": verdict.headline,
        "reasons": verdict.reasons,
        "settings": outcome.settings,
        "exit_code": outcome.exit_code,
    }
    document["probes"] = outcome.probes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mask_report(document), indent=2, default=str), encoding="utf-8")
    from celery_chaos.report import files as report

    report.write_suite(runner.SuiteResult([outcome.result], outcome.run_dir))


def run_repro(
    spec: ReproSpec,
    options: RunOptions,
    cwd: Path,
    log: Callable[[str], None] = print,
) -> ReproOutcome:
    """Import the app, build the scenario, run it, read the probes, judge, write the report."""
    view = inspect_app(spec, cwd)
    scenario = build_scenario(spec, view.queue)
    if options.backend == "local":
        options.backend_options.setdefault("cwd", cwd)
    run_dir = runner.new_run_dir(options.report_dir)
    probes: list[dict[str, Any]] = []

    def snapshot(backend: Backend) -> None:
        probes.extend(snapshot_probes(spec, backend, cwd))

    options.on_finish = snapshot
    result = runner.run_scenario(scenario, options, run_dir, log)
    outcome = ReproOutcome(
        result, judge(result, spec, view), probes, settings_lines(view, spec.celery), run_dir
    )
    _write(outcome, spec)
    return outcome
