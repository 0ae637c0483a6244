"""The one run loop: observe the history, tick the faults, check quiescence, snapshot.

``celery-chaos run`` drives a whole scenario with it (:mod:`runner`); the pytest ``chaos_env``
fixture drives one test's slice of a shared environment with it (:mod:`session`). Both get the
same defaults, the same quiescence and the same snapshot order, so a fault armed from a test fires
exactly as it would from a scenario file.

Data flows one way: the loop reads events from the ledger and hands them to the watcher (which
attempts run, which died) and the nemesis (which checkpoints were reached); it hands the watcher's
running attempts to the nemesis when faults are due; the nemesis records ``fault`` events that the
watcher reads back from the history. Neither holds a reference to the other.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from celery_chaos.core import exit_reasons
from celery_chaos.core import history as h
from celery_chaos.core.checker import BrokerState
from celery_chaos.core.scenario_parts import Fault
from celery_chaos.ledger import Ledger
from celery_chaos.placements.base import Placement
from celery_chaos.run import workload
from celery_chaos.run.nemesis import Nemesis
from celery_chaos.run.watcher import DEFAULT_WORKER_LOST_WAIT, Watcher
from celery_chaos.run.watcher import MARGIN as WATCHER_MARGIN
from celery_chaos.run.workload import Dispatch

POLL_INTERVAL = 0.01
DEFAULT_SETTLE = 1.0  # quiet time before a run ends (a scenario's ``settle`` default)
# Quiet time that suffices once nothing can be in flight (see ``DoneTasks``): it covers the hop of
# a message from a queue (BRPOP) to the ``unacked`` hash inside one worker call, a few ms.
PROVEN_SETTLE = 0.2
TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE"})  # attempt_end states after which a task is done
DRAIN_SETTLE = 0.2  # quiet time a test's teardown waits for
DRAIN_MARGIN = 4.0  # teardown: seconds beyond the watcher's wait for tasks to drain

Snapshot = tuple[list[h.Event], BrokerState, dict[str, str]]
Keep = Callable[[str | None], bool]


def worker_lost_wait(celery_settings: dict[str, Any]) -> float:
    """How long a worker may take to report a dead child (Celery's ``worker_lost_wait``)."""
    return float(celery_settings.get("worker_lost_wait", DEFAULT_WORKER_LOST_WAIT))


def teardown_wait(celery_settings: dict[str, Any]) -> float:
    """Long enough for a worker to report every death it saw, plus a few seconds to drain."""
    return worker_lost_wait(celery_settings) + WATCHER_MARGIN + DRAIN_MARGIN


def end_reason(quiet: bool, ended_on_loop: bool) -> str:
    """Why :meth:`Loop.wait` returned, as result.json's ``end_reason`` says it."""
    if ended_on_loop:
        return h.END_ON_REDELIVERY_LOOP
    return "quiescent" if quiet else "deadline"


def pick_seed(*preferred: int | None) -> int:
    """The first seed given (scenario, then command line), else a fresh random one."""
    return next((s for s in preferred if s is not None), random.SystemRandom().randrange(2**31))


class Interrupted(KeyboardInterrupt):
    """The suite was interrupted (Ctrl-C/SIGTERM reach the main thread only): a scenario running
    in a helper thread stops at its next loop pass and its backend cleans up on the way out."""


@dataclass
class QuietWindow:
    """Quiescence must hold without a break for ``settle`` seconds before a run may end: a
    message can be in flight between the broker and a worker for a moment. When the history and
    the broker prove nothing is in flight (``proven``), ``PROVEN_SETTLE`` suffices."""

    settle: float
    since: float | None = None
    proven_since: float | None = None

    def held(self, quiet: bool, now: float, proven: bool = False) -> bool:
        if not quiet:
            self.since = self.proven_since = None
            return False
        self.since = now if self.since is None else self.since
        if not proven:
            self.proven_since = None
        elif self.proven_since is None:
            self.proven_since = now
        if self.proven_since is not None and now - self.proven_since >= PROVEN_SETTLE:
            return True
        return now - self.since >= self.settle


class DoneTasks:
    """Which tasks seen in the history are *done*: their latest attempt ended SUCCESS or FAILURE.

    A done task can only run again from a message of it in the broker (a redelivery), so when
    every task seen is done and the broker holds no task message at all, nothing is in flight
    and the quiet window may be short. A task with no terminal end (not started, retrying,
    rejected, killed) keeps the full ``settle`` window: its message may be between the broker
    and a worker."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[int, bool]] = {}  # task_id -> (attempt, ended terminally)

    def observe(self, event: h.Event) -> None:
        task_id, kind = event.get("task_id"), event["type"]
        if not task_id:
            return
        attempt, _ = self.latest.get(task_id, (0, False))
        if kind == h.DISPATCH:
            self.latest.setdefault(task_id, (0, False))
        elif kind == h.ATTEMPT_START and event["attempt"] >= attempt:
            self.latest[task_id] = (event["attempt"], False)
        elif kind == h.ATTEMPT_END and event.get("attempt") == attempt:
            self.latest[task_id] = (attempt, event.get("state") in TERMINAL_STATES)

    def all_done(self) -> bool:
        return bool(self.latest) and all(done for _, done in self.latest.values())


class ProvenLoops:
    """Redelivery loops that nothing but the task itself keeps going.

    Counting starts once every fault has fired and every task was sent. A task is in a proven
    loop when, since then, more than ``threshold`` of its deliveries were followed by another
    delivery and none ended: each died with its process (no ``attempt_end``, so not a retry, a
    rejection or a failure). Where the broker cannot drop a redelivered message (Redis, a plain
    classic RabbitMQ queue: ``Broker.may_end_loops``) its verdict can no longer change:
    ``redelivery_loop`` and ``pending`` at any later moment, as at the timeout (poison-reject
    ran its whole 40 s for the verdict it had at 16 s)."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.counting = False
        self.deliveries: dict[str, int] = {}  # task_id -> deliveries since counting began
        self.queues: dict[str, str | None] = {}  # task_id -> the queue of its latest delivery
        self.ended: set[str] = set()  # tasks with an attempt_end since counting began

    def observe(self, event: h.Event) -> None:
        task_id = event.get("task_id")
        if not (self.counting and task_id):
            return
        if event["type"] == h.ATTEMPT_START:
            self.deliveries[task_id] = self.deliveries.get(task_id, 0) + 1
            self.queues[task_id] = event.get("queue")
        elif event["type"] == h.ATTEMPT_END:
            self.ended.add(task_id)

    def looping(self) -> set[str]:
        """Tasks whose deliveries since counting began, all but the latest dead, exceed the
        threshold."""
        return {
            task_id
            for task_id, count in self.deliveries.items()
            if count - 1 > self.threshold and task_id not in self.ended
        }


class DueTimes:
    """When each unresolved task may still run from a message a live worker holds in memory: a
    dispatch's countdown/ETA (``due`` in its ``dispatch`` event) or a retry's (``due`` in the
    ``attempt_end`` RETRY of the attempt that asked for it). A worker holds such a message,
    unacknowledged, until it is due; after a broker lost its data nothing else shows it exists.
    The due time stops counting once a later attempt starts (the message was run) or the task
    ends terminally. Chain members after the first are published when their predecessor ends,
    so their countdown is counted from their dispatch: a lower bound."""

    def __init__(self) -> None:
        self.due: dict[str, tuple[int, float]] = {}  # task_id -> (after attempt N, epoch due)
        self.started: dict[str, int] = {}  # task_id -> its latest attempt started

    def observe(self, event: h.Event) -> None:
        task_id, kind = event.get("task_id"), event["type"]
        if not task_id:
            return
        if kind == h.ATTEMPT_START:
            self.started[task_id] = max(self.started.get(task_id, 0), event["attempt"])
        elif kind == h.DISPATCH and event.get("due") is not None:
            self.due[task_id] = (0, float(event["due"]))
        elif kind == h.ATTEMPT_END and event.get("state") == "RETRY" and event.get("due"):
            # an attempt the agent could not number is taken as the latest one started (as 0,
            # any start would count as the retry's and the held retry would hold nothing)
            after = event.get("attempt") or self.started.get(task_id, 0)
            self.due[task_id] = (after, float(event["due"]))
        elif kind == h.ATTEMPT_END and event.get("state") in TERMINAL_STATES:
            after, _ = self.due.get(task_id, (0, 0.0))
            if (event.get("attempt") or 0) >= after:  # not an older attempt's late end
                self.due.pop(task_id, None)
        after, _ = self.due.get(task_id, (None, 0.0))
        if after is not None and self.started.get(task_id, 0) > after:
            del self.due[task_id]  # a later attempt started: the held message was run

    def pending(self, now: float) -> list[str]:
        """The tasks whose due time (epoch seconds) has not come at ``now``."""
        return [task_id for task_id, (_, due) in self.due.items() if due > now]


class Loop:
    """One run over ``backend``: the history from ``ledger``'s cursor on, ``dispatches`` to
    send (or already sent by a test), ``faults`` planned with ``seed``."""

    def __init__(
        self,
        backend: Placement,
        ledger: Ledger,
        dispatches: list[Dispatch],
        faults: list[Fault],
        seed: int,
        log: Callable[[str], None] = print,
        on_event: Callable[[h.Event], None] | None = None,
    ):
        self.backend = backend
        self.ledger = ledger
        self.start = ledger._read_offset
        self.dispatches = dispatches
        self.on_event = on_event
        lost_wait = worker_lost_wait(backend.scenario.celery)
        self.watcher = Watcher(backend, ledger, worker_lost_wait=lost_wait)
        self.nemesis = Nemesis(faults, dispatches, backend, ledger, seed, log)
        self.done_tasks = DoneTasks()
        self.dues = DueTimes()
        self.loops = ProvenLoops(backend.scenario.redelivery_threshold)
        self.ended_on_loop = False  # wait() ended on proven redelivery loops (see ProvenLoops)
        self.exited: set[str] = set()  # workers whose worker_exit the history holds
        self.proven = False  # set by quiet(): nothing can be in flight (see DoneTasks)
        self.settled_in = 0.0  # seconds the final quiet window took (result.json timings)
        self.began = time.monotonic()

    @property
    def task_ids(self) -> set[str]:
        return {d.task_id for d in self.dispatches}

    def now(self) -> float:
        """Seconds since the loop began (the time base of triggers and the schedule)."""
        return time.monotonic() - self.began

    # --- one pass ------------------------------------------------------------------------
    def send_due(self, client: Any) -> None:
        """Dispatch every workload item whose offset has come."""
        now = self.now()
        for dispatch in self.dispatches:
            if not dispatch.sent and now >= dispatch.at:
                workload.send(client, self.ledger, dispatch)
            if dispatch.sent and not dispatch.revoked and self._revoke_due(dispatch, now):
                workload.revoke(client, self.ledger, dispatch)

    def _revoke_due(self, dispatch: Dispatch, now: float) -> bool:
        """A workload item's ``revoke``: at its offset, or ``delay`` after its fault fired."""
        spec = dispatch.revoke
        if spec is None:
            return False
        if spec.get("at") is not None:
            return now >= spec["at"] + spec.get("delay", 0.0)
        fault = self.nemesis.planned[spec["after_fault"]]
        return fault.fired_at is not None and now >= fault.fired_at + spec.get("delay", 0.0)

    def step(self, fire: bool = True) -> None:
        """Read new events, record deaths (attempts and worker processes), fire due faults."""
        now = self.now()
        for event in self.ledger.poll():
            self.watcher.observe(event)
            self.nemesis.observe(event, now)
            self.done_tasks.observe(event)
            self.dues.observe(event)
            self.loops.observe(event)
            if event["type"] == h.WORKER_EXIT:
                self.exited.add(event.get("worker") or "")
            if self.on_event is not None:
                self.on_event(event)
        self._record_worker_exits()
        self.watcher.check()
        if fire:
            self.nemesis.tick(now, self.watcher.running)

    def _record_worker_exits(self, force: bool = False) -> None:
        for gone in self.backend.reap_worker_exits(force=force):
            self.ledger.record(h.WORKER_EXIT, **asdict(gone))  # the WorkerExit fields as they are
            self.exited.add(gone.worker)

    def _record_hung_workers(self) -> None:
        """Workers Celery declared dead (``Unrecoverable error`` in their log) whose process
        still ran at the end: Celery stops consuming and shuts such a worker down, and that
        shutdown can hang for good (seen on RabbitMQ after PRECONDITION_FAILED: py-amqp's
        ``channel.close`` waiting for a close-ok the broker never sends). Without this record the
        checker, which counts exits, would not see the crash at all."""
        for worker in self.backend.workers:
            if worker.name in self.exited:
                continue
            lines = self.backend.worker_log(worker)
            if exit_reasons.declared_dead(lines):
                pid = getattr(worker.handle, "pid", None)  # a local Popen's; a container: None
                tail = exit_reasons.explaining_tail(lines)
                self.ledger.record(h.WORKER_HUNG, worker=worker.name, pid=pid, log_tail=tail)

    def held_in_memory(self) -> bool:
        """Whether a live worker may hold a message of an unresolved task that is not due yet
        (:class:`DueTimes`): the run may not end before it is due. Provably nobody holds it once
        every worker's exit is in the history (a worker started later could only take it from
        the broker, which the quiet check reads)."""
        if not self.dues.pending(time.time()):
            return False
        return any(w.name not in self.exited for w in self.backend.workers)

    def quiet(self, fire: bool = True) -> bool:
        """Nothing more can happen: every task sent and every fault fired (when firing), no
        attempt running or awaiting its worker's report, no bytes held by a network fault (a
        message in transit), no live worker holding a task that is not due yet, none of our
        messages in the broker. Sets ``proven`` when, besides,
        every task seen is done and the broker holds no task message at all (nothing in flight:
        :class:`DoneTasks`)."""
        self.proven = False
        if fire and not self._all_fired():
            return False
        if not self.watcher.settled() or self.backend.network_holds_data():
            return False
        if self.held_in_memory():
            return False
        may_hold, anything = self.backend.broker.occupancy(self.task_ids)
        if may_hold:
            return False
        self.proven = not anything and self.done_tasks.all_done()
        return True

    def _all_fired(self) -> bool:
        """Every fault fired (or given up) and every task sent, every revoke sent."""
        if not (self.nemesis.done and all(d.sent for d in self.dispatches)):
            return False
        return not any(d.revoke and not d.revoked for d in self.dispatches)

    def only_loops_left(self) -> bool:
        """Every task is done or in a proven redelivery loop (:class:`ProvenLoops`), at least one
        loops, nothing else may still be in flight (no message of another task in the broker,
        none held by a network fault or in a worker's memory until it is due), and the broker
        cannot end the loop itself (:meth:`Broker.may_end_loops`)."""
        looping = self.loops.looping()
        if not looping:
            return False
        if any(not done for t, (_, done) in self.done_tasks.latest.items() if t not in looping):
            return False
        if self.backend.network_holds_data() or self.held_in_memory():
            return False
        if self.backend.broker.may_hold_besides(self.task_ids - looping, len(looping)):
            return False
        return not self.backend.broker.may_end_loops({self.loops.queues[t] for t in looping})

    def wait(
        self,
        timeout: float,
        settle: float,
        fire: bool = True,
        client: Any = None,
        stop: threading.Event | None = None,
        end_on_loops: bool = False,
    ) -> bool:
        """Step until quiet for ``settle`` seconds (True) or ``timeout`` seconds passed (False);
        with ``client``, workload items are dispatched at their offsets on the way. ``stop``
        set: raise :class:`Interrupted`. ``end_on_loops``: also end (True, ``ended_on_loop``)
        once only proven redelivery loops are left (:meth:`only_loops_left`)."""
        end = time.monotonic() + timeout
        window = QuietWindow(settle)
        while True:
            if stop is not None and stop.is_set():
                raise Interrupted("suite interrupted")
            if client is not None:
                self.send_due(client)
            self.loops.counting = self.loops.counting or (end_on_loops and self._all_fired())
            self.step(fire)
            now = time.monotonic()
            if window.held(self.quiet(fire), now, self.proven):
                self.settled_in = now - (window.since or now)
                return True
            if self.loops.counting and self.only_loops_left():
                self.ended_on_loop = True
                return True
            if now >= end:
                return False
            time.sleep(POLL_INTERVAL)

    # --- the end -------------------------------------------------------------------------
    def stop_faults(self) -> None:
        """Faults still waiting for their trigger are recorded ``missed``; parked tasks go on;
        a worker that exited since the last pass is recorded now, before the run's end, and so
        is one Celery declared dead that still runs (:meth:`_record_hung_workers`)."""
        self.nemesis.give_up(self.now())
        self.nemesis.release_all()
        self._record_worker_exits(force=True)
        self._record_hung_workers()

    def history(self, keep: Keep | None = None) -> list[h.Event]:
        events = self.ledger.read_from(self.start)
        return events if keep is None else [e for e in events if keep(e.get("task_id"))]

    def snapshot(
        self, keep: Keep | None = None, live: bool = False, barrier: Callable[[], Any] | None = None
    ) -> Snapshot:
        """Broker and locks first, history last: a task that moves in between is then seen
        later in the history than in the broker, never missing from both (no false ``lost``).
        ``live``: the environment goes on (see ``Broker.state``). A worker exit not
        yet recorded is reaped first: the checker must see every crash. ``barrier`` runs just
        before the history is read (``run.barrier``: every event the workers sent is in)."""
        self._record_worker_exits(force=True)
        state = self.backend.broker.state(live=live)
        held = self.ledger.held_locks()
        if barrier is not None:
            barrier()
        if keep is not None:
            kept = {t: w for t, w in state.locations.items() if keep(t)}
            state = replace(state, locations=kept)
            held = {name: owner for name, owner in held.items() if keep(owner)}
        return self.history(keep), state, held
