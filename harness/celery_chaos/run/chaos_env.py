"""One chaos environment (broker + ledger + workers) and the API a test uses on it.

A test's slice drives the run loop ``celery-chaos run`` uses
(:class:`celery_chaos.run.loop.Loop`), so a fault armed here fires exactly as it would from a
scenario file. Nothing here imports pytest: a fault this backend cannot inject raises
:class:`Unsupported`, which the plugin turns into a skip.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.checker import DEFAULT_REDELIVERY_THRESHOLD, Verdicts, check
from celery_chaos.core.conclusion import FAILED, PASSED, ScenarioResult, conclude, unproven_faults
from celery_chaos.core.explain import check_explained, run_settings
from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_base import first_error
from celery_chaos.core.scenario_parts import TaskOptions, WorkloadItem
from celery_chaos.core.workflows import needs_results
from celery_chaos.faults.registry import FAULTS
from celery_chaos.ledger import Ledger
from celery_chaos.placements import Placement, Unsupported
from celery_chaos.pydantic_compat import ValidationError
from celery_chaos.report import files as report
from celery_chaos.run import storm, versions, workload
from celery_chaos.run.chaos_env_state import (
    TestSlice,
    fault_spec,
    has_app_state,
    read_app_state,
    safe_name,
    start_sampler,
    stop_sampler,
    storm_input,
    timed_dispatches,
)
from celery_chaos.run.loop import DEFAULT_SETTLE, DRAIN_SETTLE, Keep, Loop, Snapshot, teardown_wait
from celery_chaos.run.nemesis import PlannedFault
from celery_chaos.run.workload import Dispatch


class ChaosEnv:
    """A running broker + ledger + workers, and the API a test uses on it."""

    def __init__(self, env_id: str, backend: Placement, scenario: Scenario, key: str):
        assert backend.ledger is not None
        self.id = env_id
        self.backend = backend
        self.scenario = scenario
        self.key = key
        self.dirty_reason = ""
        self.tests_run = 0
        self.client = workload.make_client(
            backend.broker.url,
            backend.broker.celery_settings(scenario.celery),
            backend.results_url(),
        )
        self._known: set[str] = set()  # every task id any test dispatched here
        self._test: TestSlice | None = None

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

    # --- the app's services, as the harness reaches them ----------------------------------
    def _service(self, name: str) -> str:
        urls = self.backend.service_urls
        if name not in urls:
            raise ValueError(
                f"services.{name} is not running here:"
                f" declare @pytest.mark.chaos(services={{{name!r}: {{}}}})"
            )
        self._current().used_services = True  # the test may write: not reused (see end)
        return urls[name].harness

    @property
    def database_url(self) -> str:
        """``DATABASE_URL`` of ``services.postgres`` as this process reaches it (the workers
        get theirs, maybe another host name on docker, in their environment)."""
        return self._service("postgres")

    @property
    def redis_url(self) -> str:
        """``REDIS_URL`` of ``services.redis`` as this process reaches it."""
        return self._service("redis")

    @property
    def work_dir(self) -> Path:
        """The workers' working directory (where ``path`` invariants look)."""
        return self.backend.work_dir

    def usable(self) -> bool:
        """Clean, every worker alive, broker answering."""
        if self.dirty:
            return False
        if any(self.backend.worker_exit_reason(w) for w in self.backend.workers):
            return False
        return self.backend.broker.answers()

    def _current(self) -> TestSlice:
        if self._test is None:
            raise RuntimeError("no test is using this environment (use the chaos_env fixture)")
        return self._test

    # --- test lifecycle ------------------------------------------------------------------
    def begin(self, name: str, seed: int) -> None:
        """Start a test's slice: history from here on, its own loop."""
        assert self._test is None, "one test at a time per environment"
        client = self.backend.ledger.client
        ledger = Ledger(client, _read_offset=int(client.llen(h.HISTORY_KEY)))
        dispatches: list[Dispatch] = []
        loop = Loop(self.backend, ledger, dispatches, [], seed, print)
        self._test = TestSlice(name, seed, loop, dispatches)
        start_sampler(self.backend, self.scenario, self._test)

    def end(self, wait: float | None = None, status: str | None = None) -> ScenarioResult | None:
        """Stop its faults (an unfired one is recorded missed), let its tasks drain (else:
        dirty), write its report; returns the test's result (None if the report failed)."""
        test = self._current()
        try:
            test.loop.stop_faults()
            if not self.dirty:
                self._drain(test, teardown_wait(self.scenario.celery) if wait is None else wait)
            stop_sampler(test)
            self._keep_app_state_private(test)
            try:
                return self._write_report(test, status)
            except Exception as error:  # a side artifact: never turn a test into an error
                print(f"celery-chaos: could not write the report of {test.name}: {error!r}")
                return None
        finally:
            stop_sampler(test)
            self._test = None
            self.tests_run += 1

    def _keep_app_state_private(self, test: TestSlice) -> None:
        """The app's state a test's tasks (or the test itself, through a service's URL) may have
        changed is never handed to the next test: rows, keys and files would leak into its
        invariants. So an environment with services, setup or invariants serves no further test
        once one has sent a task or asked for a service's URL."""
        if has_app_state(self.scenario) and (test.sent_any or test.used_services):
            self.mark_dirty(f"{test.name} may have changed the app's state (services, files)")

    def _drain(self, test: TestSlice, wait: float) -> None:
        if not test.loop.wait(wait, DRAIN_SETTLE, fire=False):
            self.mark_dirty(f"tasks of {test.name} still queued or running after {wait:.0f}s")
        held = {n: o for n, o in test.loop.ledger.held_locks().items() if o in test.task_ids}
        if held:
            name, owner = sorted(held.items())[0]
            self.mark_dirty(f"lock {name} left held by task {owner} of {test.name}")

    def _write_report(self, test: TestSlice, status: str | None) -> ScenarioResult:
        """The test's result.json (the scenario format plus test, env, dirty) and history."""
        history, broker, held = self._snapshot(test)
        folder = self.backend.run_dir / safe_name(test.name)
        result = ScenarioResult(self.scenario, PASSED, test.seed, self.backend.name, folder)
        state = read_app_state(self.backend, self.scenario, test, history)
        result.verdicts = check(history, broker, held, app_state=state)
        result.versions = versions.library_versions() | versions.broker_version(self.backend)
        result.versions |= versions.worker_versions(self.backend.ledger.read_from(0))  # theirs
        conclude(result, unproven_faults(history, test.drawn))
        if status == FAILED:
            result.status = FAILED
        report.write_scenario(result, history, test=test.name, env=self.id, dirty=self.dirty_reason)
        return result

    # --- the test API --------------------------------------------------------------------
    def _slot(self, test: TestSlice, task_id: str | None) -> Dispatch:
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
        workload.send(self.client, test.loop.ledger, slot)
        return slot.task_id

    def dispatch_workflow(
        self, workflow: dict[str, Any], *, task_ids: list[str] | None = None
    ) -> list[str]:
        """Send a chain, group or chord written as in a scenario's workload (``{"chain": [{"task":
        ..., "kwargs": ...}, ...]}``) and return its members' task ids in file order (a chord's
        callback last). Celery publishes the later members itself; the history knows them all
        up front. Pass ``task_ids`` (one per member) to send members a fault was armed on."""
        test = self._current()
        try:
            item = WorkloadItem.model_validate(workflow)
        except ValidationError as error:
            raise TypeError(f"dispatch_workflow: {first_error(error)}") from None
        if item.task is not None:
            raise TypeError("dispatch_workflow: expected a chain, group or chord (see dispatch)")
        if needs_results(item) and self.scenario.results is None:
            raise TypeError(
                "dispatch_workflow: a chord needs a result backend:"
                " @pytest.mark.chaos(results={'server': 'ledger'})"
            )
        wanted = task_ids or [None] * item.members
        if len(wanted) != item.members:
            raise TypeError(f"dispatch_workflow: {item.members} task_ids expected")
        slots = [self._slot(test, task_id) for task_id in wanted]
        if any(slot.sent for slot in slots):
            raise ValueError("dispatch_workflow: a member was already dispatched")
        members = workload.plan_workflow(item, [(s.index, s.task_id) for s in slots])
        for member in members:
            test.dispatches[member.index] = member
        workload.send(self.client, test.loop.ledger, members[0])
        return [member.task_id for member in members]

    def revoke(self, task_id: str, *, terminate: bool = False) -> None:
        """Revoke a dispatched task (``app.control.revoke``), recorded in the history first;
        the checker reports it ``revoked_but_ran`` if an attempt starts afterwards."""
        test = self._current()
        slot = next((d for d in test.dispatches if d.task_id == task_id and d.sent), None)
        if slot is None:
            raise ValueError(f"revoke: task {task_id} was not dispatched by this test")
        slot.revoke = {"terminate": terminate}
        workload.revoke(self.client, test.loop.ledger, slot)

    def storm(
        self,
        workload: list[dict[str, Any]],
        *,
        duration: float,
        tasks: int,
        faults: list[dict[str, Any]],
        replace_after: float | None = 1.0,
    ) -> list[str]:
        """Plan a storm on this environment, as a scenario's ``storm:`` section does: ``tasks``
        dispatches drawn from the ``workload`` templates (``{"task": ..., "kwargs": ...,
        "count": weight}``) at random times over ``duration`` seconds, and the ``faults`` mix
        (``{"kind": ..., "every": {"min": S, "max": S}}``), all drawn from the test's seed;
        :meth:`wait_quiescent` sends and fires them as their time comes. Returns the task ids.
        Marks the environment dirty (workers die)."""
        test = self._current()
        spec, templates = storm_input(workload, duration, tasks, faults, replace_after)
        for kind in {f.kind for f in spec.faults}:
            self._check_injectable(kind)
        alive = [w.index for w in self.backend.workers if not self.backend.worker_exit_reason(w)]
        items, planned = storm.draw(
            spec, templates, (alive, self.backend.next_index), self.scenario.workers.pool, test.seed
        )
        start = test.loop.now()
        sent_later = timed_dispatches(items, len(test.dispatches), start)
        test.dispatches.extend(sent_later)
        test.scheduled.update(d.task_id for d in sent_later)
        self._known.update(test.scheduled)
        for fault in planned:
            when = fault.when.model_copy(update={"at": round(start + (fault.when.at or 0), 4)})
            added = test.loop.nemesis.add(fault.model_copy(update={"when": when}))
            test.drawn.add(added.index)
        self.mark_dirty(f"storm in {test.name}")
        return [d.task_id for d in sent_later]

    def _check_injectable(self, kind: str) -> None:
        """Raise :class:`Unsupported` for a kind this environment cannot inject now."""
        if kind not in self.backend.supported_faults:
            raise Unsupported(f"{kind} is not supported by the {self.backend.name} backend")
        if FAULTS[kind].proxied_on and not self.backend.network_faults_ready():
            raise Unsupported(
                f"{kind} is not supported by the {self.backend.name} backend unless declared:"
                f" @pytest.mark.chaos(faults=[{kind!r}]) puts the workers behind the proxy"
            )

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
        (headroom, wait...). Anything but kill_child marks the environment dirty. Raises
        :class:`Unsupported` when this backend cannot inject ``kind``."""
        test = self._current()
        self._check_injectable(kind)
        if FAULTS[kind].memory_cgroup and not self._has_memory_cgroup():
            raise ValueError(
                f"{kind} needs a memory cgroup: declare @pytest.mark.chaos(faults=[{kind!r}])"
            )
        index = self._slot(test, task).index if task is not None else None
        spec = fault_spec(test, kind, index, checkpoint, attempt, worker, delay, options)
        if FAULTS[kind].destructive:
            self.mark_dirty(f"{kind} fault in {test.name}")
        planned = test.loop.nemesis.add(spec)
        self.pump()
        return planned

    def _has_memory_cgroup(self) -> bool:
        declared = any(FAULTS[f.kind].memory_cgroup for f in self.scenario.faults)
        return declared or bool(self.scenario.workers.memory_limit)

    def pump(self) -> None:
        """Read new history events, record dead attempts, fire the faults that are due."""
        self._current().loop.step(fire=True)

    def wait_quiescent(self, timeout: float = 60.0, settle: float = DEFAULT_SETTLE) -> bool:
        """Drive faults and watch until nothing more can happen to this test's tasks (every
        fault fired, no attempt running, none of its messages in the broker) for ``settle``
        seconds; the runner's quiescence. False if ``timeout`` came first."""
        test = self._current()
        unsent = [
            d.task_id for d in test.dispatches if not d.sent and d.task_id not in test.scheduled
        ]
        if unsent:
            raise ValueError(f"a fault is armed on task {unsent[0]}, which was never dispatched")
        return test.loop.wait(timeout, settle, fire=True, client=self.client)

    def _keep(self, test: TestSlice) -> Keep:
        """This test's tasks, plus ids no test dispatched (so ``unexpected`` still works)."""
        ours = test.task_ids
        return lambda task_id: task_id is None or task_id in ours or task_id not in self._known

    def history(self) -> list[h.Event]:
        """This test's events: the slice since it began, other tests' tasks filtered out."""
        test = self._current()
        return test.loop.history(self._keep(test))

    def _snapshot(self, test: TestSlice) -> Snapshot:
        """A clean environment is read without disturbing it; a dirty one (never reused) is
        read fully, which on RabbitMQ closes every connection, this client's first."""
        if self.dirty and self.backend.broker.snapshot_closes_connections:
            self.client.close()
            return test.loop.snapshot(self._keep(test))
        return test.loop.snapshot(self._keep(test), live=True)

    def verdicts(self, redelivery_threshold: int = DEFAULT_REDELIVERY_THRESHOLD) -> Verdicts:
        """The checker's verdicts on this test's tasks only, findings explained; call after
        :meth:`wait_quiescent` (before it, in-flight tasks are honestly ``pending``). They
        include the marker's invariants, read now (``{task_ids}``: this test's tasks), and
        ``result_not_stored`` for this test's tasks the result backend holds no SUCCESS for."""
        test = self._current()
        test.loop.step(fire=False)
        snapshot = self._snapshot(test)
        settings = run_settings(self.scenario, versions.library_versions(), snapshot[0])
        state = read_app_state(self.backend, self.scenario, test, snapshot[0])
        verdicts = check_explained(snapshot, settings, redelivery_threshold, state)
        if verdicts.counts.get("invariant_violations"):
            self.mark_dirty(f"an invariant broke in {test.name}")
        return verdicts

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.backend.close()
