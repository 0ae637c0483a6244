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

The pieces are the ones ``celery-chaos run`` uses (backend, Watcher, Nemesis, workload.send,
checker.check): a fault armed here fires exactly as it would from a scenario file.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from celery_chaos.backends import Backend, Unsupported, make_backend
from celery_chaos.core import history as h
from celery_chaos.core.checker import (
    DEFAULT_REDELIVERY_THRESHOLD,
    VERDICTS,
    Attempt,
    BrokerState,
    TaskReport,
    Verdicts,
    check,
)
from celery_chaos.core.expectations import ExpectationResult, evaluate
from celery_chaos.core.scenario import (
    Fault,
    Range,
    Scenario,
    TaskOptions,
    first_error,
    parse_scenario,
)
from celery_chaos.ledger import Ledger
from celery_chaos.report import files as report
from celery_chaos.run import workload
from celery_chaos.run.nemesis import Nemesis, PlannedFault
from celery_chaos.run.preflight import preflight
from celery_chaos.run.runner import (
    QuietWindow,
    RunOptions,
    ScenarioResult,
    SuiteResult,
    new_run_dir,
    run_scenario,
)
from celery_chaos.run.watcher import Watcher
from celery_chaos.run.workload import Dispatch

POLL_INTERVAL = 0.01
TEARDOWN_WAIT = 15.0  # > the default worker_lost_wait (10 s) + the watcher's 1 s margin
MAX_LIVE_ENVIRONMENTS = 2
NON_DESTRUCTIVE = frozenset({"kill_child"})
MARKER_KEYS = ("celery", "workers", "broker", "faults")
TASK_LINES = 20


# --- describing verdicts ------------------------------------------------------------------


def _attempt_text(attempt: Attempt) -> str:
    where = f" on {attempt.worker}" if attempt.worker else ""
    if attempt.state:
        end = attempt.state
    elif attempt.died is not None:
        at = f" at {attempt.last_checkpoint}" if attempt.last_checkpoint else ""
        why = attempt.exit_reason or (
            f"fault {attempt.interrupted_by}" if attempt.interrupted_by is not None else ""
        )
        end = f"died{at}" + (f" ({why})" if why else "")
    else:
        end = "still running"
    return f"attempt {attempt.attempt}{where}: {end}"


def describe_task(task: TaskReport) -> str:
    """One line per task: its verdicts, then what happened to each attempt."""
    head = f"#{task.index} " if task.index is not None else "(unexpected) "
    parts = [f"{head}{task.task}[{task.task_id}]: {', '.join(task.verdicts)}"]
    parts += [_attempt_text(a) for a in task.attempts] or ["never started"]
    if task.in_broker:
        parts.append("in broker: " + ", ".join(task.in_broker))
    if task.failures:
        parts.append("failures: " + ", ".join(task.failures))
    return "; ".join(parts)


def describe_tasks(verdicts: Verdicts, limit: int = TASK_LINES) -> list[str]:
    """Per-task lines, offenders (anything but ``ok``) first, at most ``limit`` of them."""
    tasks = sorted(verdicts.tasks, key=lambda t: t.verdicts == ["ok"])
    lines = [describe_task(t) for t in tasks[:limit]]
    if len(tasks) > limit:
        lines.append(f"... and {len(tasks) - limit} more (see the report's result.json)")
    return lines


def counts_text(verdicts: Verdicts) -> str:
    return ", ".join(f"{k}={v}" for k, v in verdicts.counts.items() if v) or "none"


def unmet_line(verdicts: Verdicts, unmet: ExpectationResult) -> str:
    """The same wording as ``report.failure_message``, for one expectation."""
    line = f"{unmet.verdict}: expected {unmet.wanted}, got {unmet.actual}"
    offenders = verdicts.offenders(unmet.verdict)
    return line + (" (" + ", ".join(offenders[:10]) + ")" if offenders else "")


def assert_verdicts(verdicts: Verdicts, **expected: int | dict[str, int] | Range) -> None:
    """Assert verdict counts like a scenario's ``expect`` (``lost=0``, ``ok={"min": 2}``); the
    AssertionError lists each unmet expectation with its offenders and every task's verdicts."""
    __tracebackhide__ = True
    unknown = sorted(set(expected) - set(VERDICTS))
    if unknown:
        raise TypeError(f"unknown verdict {unknown[0]!r}; expected one of {', '.join(VERDICTS)}")
    rules = {
        k: v if isinstance(v, int | Range) else Range.model_validate(v) for k, v in expected.items()
    }
    unmet = [r for r in evaluate(rules, verdicts.counts) if not r.met]
    if not unmet:
        return
    lines = ["verdicts not as expected:"]
    lines += [f"  {unmet_line(verdicts, u)}" for u in unmet]
    lines += [f"all verdicts: {counts_text(verdicts)}", "tasks:"]
    lines += [f"  {line}" for line in describe_tasks(verdicts)]
    raise AssertionError("\n".join(lines))


def scenario_failure(result: ScenarioResult, replay: str) -> str:
    """Why a scenario item failed: unmet expectations, per-task verdicts, how to replay it."""
    lines = [
        f"scenario {result.scenario.name}: expectations not met"
        f" (backend {result.backend}, seed {result.seed})",
        f"unmet: {report.failure_message(result)}",
    ]
    if result.verdicts is not None:
        lines.append(f"all verdicts: {counts_text(result.verdicts)}")
        lines.append("tasks:")
        lines += [f"  {line}" for line in describe_tasks(result.verdicts)]
    lines += [f"replay: {replay}", f"report: {result.report_dir}"]
    return "\n".join(lines)


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
        ],
        sort_keys=True,
        default=str,
    )


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[-120:] or "test"


# --- one environment ----------------------------------------------------------------------


@dataclass
class _TestSlice:
    """What one test owns in a shared environment."""

    name: str
    seed: int
    start: int  # history offset when the test began
    ledger: Ledger  # its own read cursor over the shared history
    watcher: Watcher
    nemesis: Nemesis
    dispatches: list[Dispatch] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    @property
    def task_ids(self) -> set[str]:
        return {d.task_id for d in self.dispatches}

    def now(self) -> float:
        return time.monotonic() - self.began


class ChaosEnv:
    """A running broker + ledger + workers, and the API a test uses on it."""

    def __init__(self, env_id: str, backend: Backend, scenario: Scenario, key: str):
        assert backend.ledger is not None
        self.id = env_id
        self.backend = backend
        self.scenario = scenario
        self.key = key
        self.dirty_reason = ""
        self.tests_run = 0
        self.client = workload.make_client(backend.broker_url, scenario.celery)
        self._known: set[str] = set()  # every task id any test dispatched here
        self._test: _TestSlice | None = None

    # --- state ---------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return bool(self.dirty_reason)

    def mark_dirty(self, reason: str) -> None:
        """Never hand this environment to another test (the cache builds a fresh one)."""
        self.dirty_reason = self.dirty_reason or reason

    @property
    def workers(self) -> list[Any]:
        return list(self.backend.workers)

    @property
    def worker_pids(self) -> list[int]:
        """Main process ids of the workers (local backend; containers have none)."""
        return [w.handle.pid for w in self.backend.workers if hasattr(w.handle, "pid")]

    @property
    def seed(self) -> int:
        return self._current().seed

    def usable(self) -> bool:
        """Clean, every worker alive, broker answering."""
        if self.dirty:
            return False
        if any(self.backend.worker_exit_reason(w) for w in self.backend.workers):
            return False
        try:
            return bool(self.backend.broker_client().ping())
        except Exception:
            return False

    def _current(self) -> _TestSlice:
        if self._test is None:
            raise RuntimeError("no test is using this environment (use the chaos_env fixture)")
        return self._test

    # --- test lifecycle ------------------------------------------------------------------
    def begin(self, name: str, seed: int) -> None:
        """Start a test's slice: history from here on, its own watcher and nemesis."""
        assert self._test is None, "one test at a time per environment"
        client = self.backend.ledger.client
        start = int(client.llen(h.HISTORY_KEY))
        ledger = Ledger(client, _read_offset=start)
        lost_wait = float(self.scenario.celery.get("worker_lost_wait", 10.0))
        watcher = Watcher(self.backend, ledger, worker_lost_wait=lost_wait)
        dispatches: list[Dispatch] = []
        nemesis = Nemesis([], dispatches, self.backend, ledger, watcher, seed, print)
        self._test = _TestSlice(name, seed, start, ledger, watcher, nemesis, dispatches)

    def end(self, wait: float = TEARDOWN_WAIT) -> None:
        """Release parked tasks, let this test's tasks drain (else: dirty), write its report."""
        test = self._current()
        try:
            test.nemesis.release_all()
            if not self.dirty:
                self._drain(test, wait)
            try:
                self._write_report(test)
            except Exception as error:  # a side artifact: never turn a test into an error
                print(f"celery-chaos: could not write the report of {test.name}: {error!r}")
        finally:
            self._test = None
            self.tests_run += 1

    def _drain(self, test: _TestSlice, wait: float) -> None:
        if not self._wait(test, wait, settle=0.2, fire=False):
            self.mark_dirty(f"tasks of {test.name} still queued or running after {wait:.0f}s")
        held = {n: o for n, o in test.ledger.held_locks().items() if o in test.task_ids}
        if held:
            name, owner = sorted(held.items())[0]
            self.mark_dirty(f"lock {name} left held by task {owner} of {test.name}")

    def _write_report(self, test: _TestSlice) -> None:
        folder = self.backend.run_dir / _safe_name(test.name)
        folder.mkdir(parents=True, exist_ok=True)
        history, broker, held = self._snapshot(test)
        verdicts = check(history, broker, held)
        document = {"test": test.name, "env": self.id, "seed": test.seed}
        document |= {"dirty": self.dirty_reason} | verdicts.as_dict()
        (folder / "result.json").write_text(json.dumps(document, indent=2, default=str))
        h.write_jsonl(history, str(folder / "history.jsonl"))

    # --- the test API --------------------------------------------------------------------
    def _slot(self, test: _TestSlice, task_id: str | None) -> Dispatch:
        """The dispatch record for ``task_id``: existing, or reserved now (fault before send)."""
        found = next((d for d in test.dispatches if d.task_id == task_id), None)
        if found is not None:
            return found
        slot = Dispatch(len(test.dispatches), task_id or str(uuid.uuid4()), "?", [], {})
        test.dispatches.append(slot)
        self._known.add(slot.task_id)
        return slot

    def dispatch(
        self,
        task_name: str,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        task_id: str | None = None,
        **options: Any,
    ) -> str:
        """Send a task (recorded in the history first) and return its id. ``options`` are the
        scenario's task options (countdown, eta, expires, time_limit, priority, queue...). Pass
        ``task_id`` to dispatch a task a fault was already armed on."""
        test = self._current()
        try:
            sendable = TaskOptions.model_validate(options).model_dump(exclude_none=True)
        except ValidationError as error:
            raise TypeError(f"dispatch({task_name!r}): {first_error(error)}") from None
        slot = self._slot(test, task_id)
        if slot.sent:
            raise ValueError(f"task {slot.task_id} was already dispatched")
        slot.task, slot.args, slot.kwargs = task_name, list(args), dict(kwargs or {})
        slot.options = sendable
        workload.send(self.client, test.ledger, slot)
        return slot.task_id

    def fault(
        self,
        kind: str,
        *,
        task: str | None = None,
        checkpoint: str | None = None,
        attempt: int = 1,
        worker: int | None = None,
        delay: float = 0.0,
        **options: Any,
    ) -> PlannedFault:
        """Arm a fault. With ``checkpoint`` it fires when ``task`` (a task id) reaches it, the
        task parked there until it has; without, it fires ``delay`` seconds from now (at once
        if 0). ``worker`` is a worker index; ``options`` are the scenario's fault options
        (headroom, wait...). Anything but kill_child marks the environment dirty."""
        test = self._current()
        if kind not in self.backend.supported_faults:
            pytest.skip(f"{kind} is not supported by the {self.backend.name} backend")
        if kind == "oom" and not self._prepared_for_oom():
            raise ValueError(
                "oom needs a memory cgroup: declare @pytest.mark.chaos(faults=['oom'])"
            )
        index = self._slot(test, task).index if task is not None else None
        when = (
            {"task": index, "checkpoint": checkpoint, "attempt": attempt, "delay": delay}
            if checkpoint is not None
            else {"at": round(test.now() + delay, 4)}
        )
        target = {k: v for k, v in (("task", index), ("worker", worker)) if v is not None}
        try:
            spec = Fault.model_validate({"kind": kind, "when": when, "target": target, **options})
        except ValidationError as error:
            raise ValueError(f"fault({kind!r}): {first_error(error)}") from None
        if kind not in NON_DESTRUCTIVE:
            self.mark_dirty(f"{kind} fault in {test.name}")
        planned = test.nemesis.add(spec)
        self.pump()
        return planned

    def _prepared_for_oom(self) -> bool:
        declared = any(f.kind == "oom" for f in self.scenario.faults)
        return declared or bool(self.scenario.workers.memory_limit)

    def pump(self) -> None:
        """Read new history events, record dead attempts, fire the faults that are due."""
        self._observe(self._current(), fire=True)

    def _observe(self, test: _TestSlice, fire: bool) -> None:
        now = test.now()
        for event in test.ledger.poll():
            test.watcher.observe(event)
            test.nemesis.observe(event, now)
        test.watcher.check()
        if fire:
            test.nemesis.tick(now)

    def _idle(self, test: _TestSlice) -> bool:
        """No attempt running or about to be reported, no message of this test in the broker."""
        if not test.watcher.settled():
            return False
        return not self.backend.broker_state().may_hold(test.task_ids)

    def _wait(self, test: _TestSlice, timeout: float, settle: float, fire: bool) -> bool:
        end = time.monotonic() + timeout
        window = QuietWindow(settle)
        while True:
            self._observe(test, fire)
            now = time.monotonic()
            if window.held((not fire or test.nemesis.done) and self._idle(test), now):
                return True
            if now >= end:
                return False
            time.sleep(POLL_INTERVAL)

    def wait_quiescent(self, timeout: float = 60.0, settle: float = 1.0) -> bool:
        """Drive faults and watch until nothing more can happen to this test's tasks (every
        fault fired, no attempt running, none of its messages in the broker) for ``settle``
        seconds; the runner's quiescence. False if ``timeout`` came first."""
        test = self._current()
        unsent = [d.task_id for d in test.dispatches if not d.sent]
        if unsent:
            raise ValueError(f"a fault is armed on task {unsent[0]}, which was never dispatched")
        return self._wait(test, timeout, settle, fire=True)

    def _keep(self, test: _TestSlice) -> Callable[[str | None], bool]:
        """This test's tasks, plus ids no test dispatched (so ``unexpected`` still works)."""
        ours = test.task_ids
        return lambda task_id: task_id is None or task_id in ours or task_id not in self._known

    def history(self) -> list[h.Event]:
        """This test's events: the slice since it began, other tests' tasks filtered out."""
        test = self._current()
        keep = self._keep(test)
        raw = test.ledger.client.lrange(h.HISTORY_KEY, test.start, -1)
        return [e for e in h.decode(raw, test.start) if keep(e.get("task_id"))]

    def _snapshot(self, test: _TestSlice) -> tuple[list[h.Event], BrokerState, dict[str, str]]:
        """Broker and locks first, history last: a task that moves in between is then seen
        later in the history than in the broker, never missing from both (no false ``lost``)."""
        keep = self._keep(test)
        state = self.backend.broker_state()
        locations = {t: where for t, where in state.locations.items() if keep(t)}
        held = {name: owner for name, owner in test.ledger.held_locks().items() if keep(owner)}
        return self.history(), BrokerState(state.reachable, locations), held

    def verdicts(self, redelivery_threshold: int = DEFAULT_REDELIVERY_THRESHOLD) -> Verdicts:
        """The checker's verdicts on this test's tasks only; call after :meth:`wait_quiescent`
        (before it, in-flight tasks are honestly ``pending``)."""
        test = self._current()
        self._observe(test, fire=False)
        return check(*self._snapshot(test), redelivery_threshold)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.backend.close()


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
        backend = make_backend(self.backend, scenario, folder, log=print, **self.backend_options)
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

    def __init__(self, backend: str, report_dir: Path, seed: int | None):
        self.options = RunOptions(backend=backend, report_dir=report_dir, seed=seed)
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
        if self.options.seed is not None:
            return self.options.seed
        return random.SystemRandom().randrange(2**31)

    def run(self, scenario: Scenario) -> ScenarioResult:
        result = run_scenario(scenario, self.options, self.run_dir, log=print)
        self.results.append(result)
        return result

    def open_env(self, settings: dict[str, Any], test_name: str) -> ChaosEnv:
        """The environment for one test (shared when settings match), its slice begun.
        Raises ScenarioError/ValueError for bad settings, Unsupported if it cannot run here."""
        scenario = env_scenario(settings)
        preflight(scenario, "@pytest.mark.chaos", workload=False)
        env = self.envs.acquire(scenario)
        env.begin(test_name, self.test_seed())
        return env

    def close_env(self, env: ChaosEnv) -> None:
        try:
            env.end()
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
]
