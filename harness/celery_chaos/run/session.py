"""Chaos environments for tests written in Python (the ``chaos_env`` pytest fixture's engine).

Starting Redis and Celery workers takes seconds, and rebuilding them for every test is the main
complaint about existing tools, so environments live in a session-wide cache keyed by what shapes
them: the backend, the Celery settings, the worker spec and the broker spec. Tests whose settings
match share one environment; each test still sees only its own slice of it: the history since it
began, filtered to the tasks it dispatched, and the broker/lock state of those tasks.

Reuse must never leak one test into the next, so an environment is marked *dirty*, and replaced
for the next test, when a test injects a destructive fault (anything but ``kill_child``, whose pool
process Celery replaces itself), leaves tasks queued or running after its teardown wait, or leaves
a lock held. A worker that died, or an unreachable broker, also makes the cache build a new one.
An environment with the app's own state (``services``, ``setup`` or ``invariants`` in the marker)
serves no further test once one has sent a task or asked for a service's URL (its rows, keys and
files would leak into the next test's invariants), nor once an invariant broke: each such test
gets fresh services, its setup steps run once per environment.

One environment and a test's API on it are :class:`celery_chaos.run.chaos_env.ChaosEnv`; each
test drives the run loop ``celery-chaos run`` uses. Nothing here imports pytest.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from celery_chaos.agent.instrument import SYNC_WRITES
from celery_chaos.core.conclusion import ScenarioResult, SuiteResult
from celery_chaos.core.scenario import Scenario, parse_scenario, with_broker_kind
from celery_chaos.core.scenario_parts import WorkersSpec
from celery_chaos.placements import Unsupported, make_placement
from celery_chaos.placements.worker_command import APP_ENV, BOOTSTRAP_APP
from celery_chaos.report import files as report
from celery_chaos.report.messages import (
    assert_verdicts,
    describe_task,
    describe_tasks,
    scenario_failure,
)
from celery_chaos.run import setup
from celery_chaos.run.chaos_env import ChaosEnv
from celery_chaos.run.loop import pick_seed
from celery_chaos.run.preflight import preflight
from celery_chaos.run.runner import RunOptions, new_run_dir, run_scenario

MAX_LIVE_ENVIRONMENTS = 2
MARKER_KEYS = (
    "celery",
    "workers",
    "broker",
    "faults",
    "results",
    "services",
    "setup",
    "invariants",
)


# --- environment settings -----------------------------------------------------------------


def env_scenario(settings: dict[str, Any], source: str = "@pytest.mark.chaos") -> Scenario:
    """Validate ``chaos`` marker settings with the scenario schema (same errors, same fields).

    ``faults`` lists the fault kinds a test will inject, so the backend can prepare for them
    (``oom`` needs a memory cgroup) or refuse up front (``partition`` on the local backend).
    """
    unknown = sorted(set(settings) - set(MARKER_KEYS))
    if unknown:
        raise ValueError(f"{source}: {unknown[0]}: unknown key; use {', '.join(MARKER_KEYS)}")
    data = {
        "name": "chaos-env",
        "description": "an environment shared by tests written in Python",
        "celery": dict(settings.get("celery") or {}),
        "workers": dict(settings.get("workers") or {}),
        "broker": dict(settings.get("broker") or {}),
        "results": settings.get("results"),
        "services": dict(settings.get("services") or {}),
        "setup": list(settings.get("setup") or []),
        "invariants": list(settings.get("invariants") or []),
        "workload": [{"task": "celery.ping"}],  # unused: the schema wants one
        "faults": [{"kind": kind, "when": {"at": 0}} for kind in settings.get("faults") or ()],
    }
    return parse_scenario(data, source)


def env_key(backend: str, scenario: Scenario) -> str:
    """Equal keys mean one environment can serve both tests (defaults normalised by pydantic)."""
    return json.dumps(
        [
            backend,
            scenario.celery,
            scenario.workers.model_dump(mode="json"),
            scenario.broker.model_dump(mode="json"),
            sorted({f.kind for f in scenario.faults}),
            scenario.results
            if scenario.results is None or isinstance(scenario.results, str)
            else scenario.results.model_dump(mode="json"),
            # What the app's state starts from and what is read of it: environments with other
            # services, setup steps or invariants are never shared.
            scenario.services.model_dump(mode="json"),
            [step.model_dump(mode="json") for step in scenario.setup],
            [invariant.model_dump(mode="json") for invariant in scenario.invariants],
        ],
        sort_keys=True,
        default=str,
    )


# --- the session-wide cache -----------------------------------------------------------------


class EnvironmentCache:
    """Live environments keyed by :func:`env_key`; the least recently used beyond ``max_live``
    is stopped, so a session alternating between a few settings does not rebuild each time."""

    def __init__(
        self,
        backend: str,
        run_dir: Callable[[], Path],
        backend_options: dict[str, Any] | None = None,
        max_live: int = MAX_LIVE_ENVIRONMENTS,
    ):
        self.backend = backend
        self.run_dir = run_dir
        self.backend_options = backend_options or {}
        self.max_live = max_live
        self.built = 0
        self._envs: OrderedDict[str, ChaosEnv] = OrderedDict()

    def acquire(self, scenario: Scenario) -> ChaosEnv:
        key = env_key(self.backend, scenario)
        env = self._envs.pop(key, None)
        if env is not None and not env.usable():
            env.close()
            env = None
        env = env or self._build(scenario, key)
        self._envs[key] = env
        while len(self._envs) > self.max_live:
            self._envs.popitem(last=False)[1].close()
        return env

    def release(self, env: ChaosEnv) -> None:
        """After a test: a dirty environment is stopped now (its processes are not needed)."""
        if env.dirty:
            self._envs.pop(env.key, None)
            env.close()

    def _build(self, scenario: Scenario, key: str) -> ChaosEnv:
        self.built += 1
        env_id = f"env{self.built}-{uuid.uuid4().hex[:6]}"
        folder = self.run_dir() / "envs" / env_id
        backend = make_placement(self.backend, scenario, folder, log=print, **self.backend_options)
        backend.agent_writes = SYNC_WRITES  # read with workers alive: no barrier (run.barrier)
        if scenario.setup:  # once per environment, between its services and its workers
            backend.before_workers = partial(setup.run_steps, backend, scenario.setup)
        try:
            backend.check_runnable()
            backend.start()
            return ChaosEnv(env_id, backend, scenario, key)
        except BaseException:
            backend.close()
            raise

    def close(self) -> None:
        while self._envs:
            self._envs.popitem()[1].close()


# --- everything one pytest process keeps ---------------------------------------------------


class ChaosSession:
    """Options, the run folder (created on first use: a run that collects only writes
    nothing), scenario results for the suite summary, and the environment cache."""

    def __init__(
        self,
        backend: str,
        report_dir: Path,
        seed: int | None,
        broker: str | None = None,
        app_broker_kind: Callable[[str], str | None] | None = None,
    ):
        self.options = RunOptions(backend=backend, report_dir=report_dir, seed=seed)
        self.broker = broker  # --chaos-broker: every environment and scenario on this kind
        # The broker kind of a worker app's own broker_url (amqp -> rabbitmq), when told how.
        self.app_broker_kind = app_broker_kind
        self.results: list[ScenarioResult] = []
        self.envs = EnvironmentCache(backend, lambda: self.run_dir)
        self._run_dir: Path | None = None

    @property
    def run_dir(self) -> Path:
        """``report_dir/<timestamp>``, unique per process (so xdist workers never clash)."""
        if self._run_dir is None:
            self._run_dir = new_run_dir(self.options.report_dir)
        return self._run_dir

    def test_seed(self) -> int:
        return pick_seed(self.options.seed)

    def run(self, scenario: Scenario) -> ScenarioResult:
        scenario = with_broker_kind(scenario, self.broker)
        result = run_scenario(scenario, self.options, self.run_dir, log=print)
        self.results.append(result)
        return result

    def open_env(self, settings: dict[str, Any], test_name: str) -> ChaosEnv:
        """The environment for one test (shared when settings match), its slice begun.
        Raises ScenarioError/ValueError for bad settings, Unsupported if it cannot run here."""
        scenario = env_scenario(self._with_broker(settings))
        preflight(scenario, "@pytest.mark.chaos", workload=False)
        env = self.envs.acquire(scenario)
        env.begin(test_name, self.test_seed())
        return env

    def _with_broker(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The marker's ``broker.kind`` if given, else ``--chaos-broker``, else the kind of the
        workers' app's own ``broker_url`` (Redis when it cannot tell)."""
        broker = dict(settings.get("broker") or {})
        if "kind" in broker:
            return settings
        kind = self.broker
        if kind is None and self.app_broker_kind is not None:
            workers = settings.get("workers") or {}
            app = workers.get("app") or WorkersSpec().app
            if app == BOOTSTRAP_APP:
                app = (workers.get("env") or {}).get(APP_ENV, app)
            kind = self.app_broker_kind(str(app))
        return settings | {"broker": broker | {"kind": kind or "redis"}}

    def close_env(self, env: ChaosEnv, status: str | None = None) -> ScenarioResult | None:
        """End the test's slice (``status``: the test's own, ``failed`` or None) and return
        its result; a dirty environment is stopped."""
        try:
            return env.end(status=status)
        finally:
            self.envs.release(env)

    def finish(self) -> None:
        """Stop every environment; write junit.xml/summary.md if scenario files ran."""
        self.envs.close()
        if self.results:
            report.write_suite(SuiteResult(self.results, self.run_dir))


__all__ = [
    "ChaosEnv",
    "ChaosSession",
    "EnvironmentCache",
    "Unsupported",
    "assert_verdicts",
    "describe_task",
    "describe_tasks",
    "env_scenario",
    "scenario_failure",
]
