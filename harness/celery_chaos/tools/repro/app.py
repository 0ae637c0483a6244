"""The user's app, imported here or on its own interpreter (``--python``), and the repro as
an ordinary scenario.

The scenario runs workers of ``celery_chaos.agent.bootstrap`` with ``CHAOS_APP=<your app>``: your
module, your settings, instrumented without edits; the workload is your task, the fault the one
asked for.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery_chaos.agent import results as agent_results
from celery_chaos.core.scenario import Scenario
from celery_chaos.faults.registry import FAULTS
from celery_chaos.tools import audit
from celery_chaos.tools.audit.app_probe import consumed_queue
from celery_chaos.tools.repro.spec import (
    EXPECT,
    REPLACEMENT_DELAY,
    WORKFLOW_EXPECT,
    ReproError,
    ReproSpec,
    parse_trigger,
    scenario_app_state,
)

DEFAULT_CONCURRENCY = 2


@dataclass
class AppView:
    """What the harness learned by importing the app: its settings as the workers will see them."""

    settings: dict[str, Any]
    policy: audit.TaskPolicy
    queue: str | None
    workload: dict[str, Any] | None = None  # a workflow's item, routed (see _workflow_item)
    result_backend: str | None = None  # the app's own ``result_backend`` (None: none)


def worker_queues(worker_args: list[str]) -> list[str] | None:
    """The queues a ``-Q``/``--queues`` in the team's worker options names (None: not given)."""
    for index, arg in enumerate(worker_args):
        if arg in ("-Q", "--queues") and index + 1 < len(worker_args):
            return worker_args[index + 1].split(",")
        if arg.startswith(("-Q", "--queues=")) and len(arg) > 2:
            return arg.removeprefix("--queues=").removeprefix("-Q").split(",")
    return None


def inspect_app(spec: ReproSpec, cwd: Path, python: str | None = None) -> AppView:
    """Import the app like the workers will (same env, same overrides) and find the task: in
    this process, or with ``python`` (``--python``) on the app's own interpreter, where its
    packages are (``tools.audit.app_probe``)."""
    queues = worker_queues(list(spec.worker_args))
    routes = [(spec.task or "", spec.args, spec.kwargs)]
    routes += [(leaf["task"], leaf.get("args", []), leaf.get("kwargs", {})) for leaf in _tree(spec)]
    if python is None:
        os.environ.update(spec.env)
        try:
            app = audit.import_app(spec.app or "", cwd)
        except audit.AppImportError as error:
            raise ReproError(f"--app {error}") from None
        app.conf.update(spec.celery)
        collected = audit.collect(app)
        routed = [consumed_queue(app, task, args, kwargs, queues) for task, args, kwargs in routes]
        own = agent_results.configured_backend(app)
    else:
        collected, routed, own = _inspect_on(python, spec, cwd, routes, queues)
    for name in _task_names(spec):
        if name not in collected.tasks:
            names = ", ".join(sorted(collected.tasks)) or "none"
            raise ReproError(f"--task {name}: not registered in {spec.app} (registered: {names})")
    settings = audit.effective_config(collected.config)
    policy = audit.resolve_task(spec.task, collected.tasks[spec.task], settings)
    return AppView(settings, policy, routed[0], _workflow_item(spec, routed[1:]), own)


def _inspect_on(
    python: str, spec: ReproSpec, cwd: Path, routes: list, queues: list[str] | None
) -> tuple[audit.AppSettings, list[str | None], str | None]:
    """The app imported on ``python`` with ``spec``'s env and overrides: what it registers and
    sets, each route's consumed queue, its own result backend."""
    from celery_chaos.tools.audit.remote import probe_on, settings_of

    asked = {"overrides": spec.celery, "routes": routes, "queues": queues}
    try:
        found = probe_on(python, spec.app or "", cwd, dict(spec.env), asked)
    except audit.AppImportError as error:
        raise ReproError(f"--app {error}") from None
    return settings_of(found), found["routes"], found["result_backend"]


def _task_names(spec: ReproSpec) -> list[str]:
    if spec.workflow is None:
        return [spec.task or ""]
    return [leaf["task"] for leaf in _tree(spec)]


def _tree(spec: ReproSpec) -> list[dict[str, Any]]:
    """The workflow's task nodes as plain dicts, in file order."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "task" in node:
                found.append(node)
            for key in ("chain", "group", "header"):
                for child in node.get(key) or []:
                    walk(child)
            walk(node.get("chord"))
            walk(node.get("body"))

    walk(spec.workflow)
    return found


def _workflow_item(spec: ReproSpec, routed: list[str | None]) -> dict[str, Any] | None:
    """The workflow as a workload item, each task routed to a queue a worker consumes
    (``routed``: each leaf's, in :func:`_tree`'s order)."""
    if spec.workflow is None:
        return None
    workflow = json.loads(json.dumps(spec.workflow))  # a copy the routing can fill in
    spec_copy = spec.model_copy(update={"workflow": workflow})
    for leaf, queue in zip(_tree(spec_copy), routed, strict=True):
        if queue and not (leaf.get("options") or {}).get("queue"):
            leaf["options"] = {**(leaf.get("options") or {}), "queue": queue}
    return workflow


# --- the scenario --------------------------------------------------------------------------------


def scenario_name(task: str) -> str:
    return "repro-" + (re.sub(r"[^a-z0-9_.-]+", "-", task.lower()).strip("-.") or "task")


def broker_choice(spec: ReproSpec, view: AppView) -> tuple[str, str]:
    """The broker kind the repro starts and why: ``--broker``, else the app's own broker kind
    (so the verdict is what that broker would do), else Redis for a transport the harness
    cannot start."""
    url = view.settings.get("broker_url")
    scheme = audit.broker_scheme(url)
    if spec.broker is not None:
        return spec.broker, f"--broker {spec.broker}"
    kind = audit.broker_kind(url)
    if kind is not None:
        return kind, f"your app's broker_url is {scheme}://"
    return "redis", f"your app's broker ({scheme}) cannot be started here; Redis instead"


# The backend the harness runs in place of the app's, by kind (agent.results.kind_of).
HARNESS_BACKENDS = {
    "redis": "a database of the harness's ledger Redis",
    "db": "an SQLite file in the run's folder",
    "db+postgresql": "the run's PostgreSQL",
    "rpc": "rpc:// on the repro's broker",
    "django-db": "django-celery-results' table in an SQLite file in the run's folder",
    "django-db+postgresql": "django-celery-results' table in the run's PostgreSQL",
}


def _has_chord(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    children = [node.get("chord"), node.get("body"), *(node.get("header") or [])]
    children += [*(node.get("chain") or []), *(node.get("group") or [])]
    return "chord" in node or any(_has_chord(child) for child in children)


def results_choice(spec: ReproSpec, view: AppView, keep_app: bool) -> tuple[Any, str]:
    """The scenario's ``results`` and the line that says which result backend the workers use:
    by default one of the app's kind that the harness runs (a client of the developer's own
    backend must not decide the verdict, nor see the repro's results); ``--results app``: the
    app's own, so a backend the workers cannot reach shows as ``result_not_stored``."""
    own = agent_results.masked(view.result_backend)
    if keep_app:
        if spec.workflow is not None and _has_chord(spec.workflow):
            raise ReproError("--results app: a chord needs a result backend the harness runs")
        return "app", f"results: your app's own {own or 'none (no result_backend)'}"
    if spec.workflow is not None:  # chords: the harness's client needs the backend too
        return {"server": "ledger"}, "results: a database of the harness's ledger Redis"
    if own is None:
        return None, "results: none (your app has no result_backend)"
    kind = agent_results.kind_of(view.result_backend)
    has_postgres = getattr(getattr(spec, "services", None), "postgres", None) is not None
    if kind == "db+postgresql" and not has_postgres:
        kind = "db"
    if kind == "django-db" and has_postgres:  # worker_command.result_substitutes
        kind = "django-db+postgresql"
    ours = HARNESS_BACKENDS.get(kind or "")
    if ours is None:
        return None, f"results: your app's own {own} (the harness runs no {kind} backend)"
    return None, f"results: {ours} in place of your app's {own} (--results app keeps yours)"


def build_scenario(
    spec: ReproSpec,
    queue: str | None = None,
    workload: dict[str, Any] | None = None,
    broker: str = "redis",
    results: Any = None,
) -> Scenario:
    """The repro as a scenario: your app via celery_chaos.agent.bootstrap, your task (or your
    workflow, the fault aimed at its member ``spec.member``), one fault, on ``broker``."""
    trigger = parse_trigger(spec.at or "")
    target = spec.member if spec.workflow is not None else 0
    if "task" in trigger:
        trigger["task"] = target
    fault: dict[str, Any] = {"kind": spec.fault, "when": trigger, "target": {"task": target}}
    offered = FAULTS[spec.fault].repro
    assert offered is not None  # ReproSpec.fault accepts only the kinds repro offers
    if offered.timed:  # it lasts --duration s, then ends by itself
        fault["duration"] = spec.duration
    if "latency" in FAULTS[spec.fault].params.model_fields:
        fault["latency"] = spec.latency
    graced = "grace" in FAULTS[spec.fault].params.model_fields
    if graced:
        fault["grace"] = spec.grace
    faults = [fault]
    if offered.replacement:  # the worker is gone: a supervisor's replacement runs the redelivery
        when = {"after_fault": 0, "delay": REPLACEMENT_DELAY}
        # evict's SIGKILL is still to come: a replacement awaited in the loop would delay it
        faults.append({"kind": "start_worker", "when": when, "wait_ready": not graced})
    options = {"queue": queue} if queue else {}
    item = workload or {"task": spec.task, "args": spec.args, "kwargs": spec.kwargs}
    if workload is None:
        item["options"] = options
    workflow = spec.workflow is not None
    return Scenario.model_validate(
        {
            "name": scenario_name(spec.task or ""),
            "description": f"repro: {spec.task} in {spec.app}, {spec.fault} at {spec.at}",
            "celery": spec.celery,
            "broker": {"kind": broker},
            "workers": {
                "count": spec.workers,
                "concurrency": spec.concurrency or DEFAULT_CONCURRENCY,
                "pool": spec.pool or "prefork",
                "app": "celery_chaos.agent.bootstrap",
                "env": {**spec.env, "CHAOS_APP": spec.app},
                "args": spec.worker_args,
            },
            "workload": [item],
            "faults": faults,
            "expect": EXPECT | (WORKFLOW_EXPECT if workflow else {}),
            "timeout": spec.timeout,
            "results": results or ({"server": "ledger"} if workflow else None),
            **scenario_app_state(spec),  # services, setup and the invariants the run reads
        }
    )
