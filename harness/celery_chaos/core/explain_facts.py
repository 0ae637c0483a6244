"""What an explanation line is built from: the run's settings (never its expectations), Kombu's
restore sweep, and the run's clock (when it started and ended, which workers were alive).

Kombu's Redis transport (5.7, ``kombu/transport/redis.py``) keeps a late-acked message in the
``unacked`` sorted set, scored with the time it was delivered. ``QoS.restore_visible`` moves
back every entry older than ``visibility_timeout``, but it scans Redis only on every
``unacked_restore_throttle``-th call (default 10), and an event-loop worker (prefork, solo,
threads) calls it once when it starts consuming (``on_poll_init``) and then every
``unacked_restore_interval`` seconds (default 10): one real sweep per worker every
``interval x throttle`` seconds (100 s by default), the first one at its start. Kombu before 5.7
ignores both options (celery/kombu#2558) and sweeps every ~100 s. A gevent/eventlet worker
consumes with Celery's synchronous loop, where Kombu restores only when a poll comes back empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery_chaos.core import history as h
from celery_chaos.core.crashes import killed_worker
from celery_chaos.core.verdicts import Attempt, TaskReport

SAMPLE_APP = "celery_chaos.sample_tasks.app"
KOMBU_VISIBILITY_TIMEOUT = 3600.0
KOMBU_RESTORE_INTERVAL = 10.0
KOMBU_RESTORE_THROTTLE = 10
SWEEP_OPTIONS_SINCE = (5, 7)  # celery/kombu#2558
GREEN_POOLS = ("gevent", "eventlet")
# Celery's documented defaults (celery.app.defaults) of the settings the explanation lines and
# the audit rules read (the one table: audit imports it), so a partial mapping (a unit test, a
# config dict) reads like an app that left them alone.
CELERY_DEFAULTS: dict[str, Any] = {
    "broker_url": None,
    "broker_transport_options": {},
    "task_acks_late": False,
    "task_reject_on_worker_lost": None,
    "task_retry_on_worker_lost": False,
    "task_acks_on_failure_or_timeout": True,
    "task_acks_on_failure": None,
    "task_acks_on_timeout": None,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "worker_prefetch_multiplier": 4,
    "worker_soft_shutdown_timeout": 0.0,
    "worker_enable_soft_shutdown_on_idle": False,
    "broker_heartbeat": 120.0,
    "task_queues": None,
    "task_default_delivery_mode": 2,
}


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """``"5.6.1"`` -> (5, 6, 1); None when unknown or not a version."""
    parts = []
    for piece in str(text or "").split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


@dataclass(frozen=True)
class RunSettings:
    """The settings a run's workers had. ``celery``: the values known; ``defaults_known``: keys
    missing from it take Celery's defaults (the harness's own sample app) rather than a user
    app's values the harness cannot see."""

    celery: Mapping[str, Any] = field(default_factory=dict)
    defaults_known: bool = True
    broker: str = "redis"
    persistence: str = "none"
    pool: str = "prefork"
    timeout: float = 60.0
    kombu: str | None = None
    redelivery_threshold: int = 5

    # What the workers said they ran with (agent.app_settings, in worker_ready): an app the
    # harness does not import has its own values, which only its workers know.
    reported: Mapping[str, Any] = field(default_factory=dict)

    def value(self, key: str) -> Any:
        if key in self.celery:
            return self.celery[key]
        if self.defaults_known:
            return CELERY_DEFAULTS.get(key)
        return self.reported.get(key)

    def known(self, key: str) -> bool:
        return key in self.celery or self.defaults_known or key in self.reported

    def show(self, key: str) -> str:
        """``task_acks_late=False (Celery default)``, or the app's value, as its workers
        reported it (or unnamed when they did not)."""
        if key in self.celery:
            return f"{key}={self.celery[key]!r}"
        if self.defaults_known:
            return f"{key}={CELERY_DEFAULTS.get(key)!r} (Celery default)"
        if key in self.reported:
            return f"{key}={self.reported[key]!r} (your app's value)"
        return f"{key} (your app's value)"

    @property
    def transport(self) -> Mapping[str, Any]:
        return self.value("broker_transport_options") or {}


@dataclass(frozen=True)
class Sweep:
    """Redis's visibility timeout and Kombu's restore sweep cadence, as the workers had them."""

    visibility: float = KOMBU_VISIBILITY_TIMEOUT
    visibility_set: bool = False
    interval: float = KOMBU_RESTORE_INTERVAL
    throttle: int = KOMBU_RESTORE_THROTTLE
    options_set: bool = False
    honoured: bool = True  # False: Kombu before 5.7 ignores the two options

    @property
    def period(self) -> float:
        return self.interval * self.throttle

    def visibility_text(self, given: str = "") -> str:
        """``visibility_timeout=15s``, noting Kombu's default (or where a set value came from)."""
        note = given if self.visibility_set else " (Kombu default)"
        return f"visibility_timeout={self.visibility:g}s{note}"

    def visibility_with_sweep(self, given: str = "") -> str:
        """The timeout with the restore sweep beside it, as explain, audit and repro all state
        it: a dead worker's message comes back only at the first sweep after the timeout."""
        return f"{self.visibility_text(given)}; {self.text()}"

    def text(self) -> str:
        """``Kombu's restore sweep every 100s (unacked_restore_interval=10s x ...)``."""
        how = (
            f"unacked_restore_interval={self.interval:g}s"
            f" x unacked_restore_throttle={self.throttle}"
        )
        if not self.honoured:
            how += ": Kombu before 5.7 ignores both options, celery/kombu#2558"
        elif not self.options_set:
            how += ", Kombu defaults"
        return f"Kombu's restore sweep every {self.period:g}s ({how})"

    def next_after(self, started: float, moment: float) -> float:
        """The first sweep at or after ``moment`` of a worker that started at ``started``."""
        if moment <= started:
            return started
        return started + math.ceil((moment - started) / self.period - 1e-9) * self.period

    def due_window(self, launched: float, ready: float, moment: float) -> tuple[float, float]:
        """When the first sweep at or after ``moment`` came, as (earliest, latest), for a worker
        whose first sweep ran at some unknown time between its launch and ``worker_ready``:
        Kombu scans once when the consumer's poller starts (``on_poll_init``), before Celery
        sends ``worker_ready``, then every period from there."""
        at_ends = [self.next_after(start, moment) for start in (launched, ready)]
        earliest, latest = min(at_ends), max(at_ends)
        # a first sweep at moment - k*period in the window makes that moment itself the due one;
        # one a little earlier puts the due one nearly a whole period after it
        k = max(0, math.ceil((moment - ready) / self.period - 1e-9))
        first = moment - k * self.period
        if launched <= first <= ready:
            earliest = moment
            if first > launched:
                latest = max(latest, moment + self.period)
        return earliest, latest


def sweep_of(transport: Mapping[str, Any], kombu: str | None = None) -> Sweep:
    """The sweep as Kombu runs it (``interval <= 0`` falls back to 10, throttle 0 to 1)."""
    version = version_tuple(kombu)
    honoured = version is None or version[:2] >= SWEEP_OPTIONS_SINCE
    visibility = transport.get("visibility_timeout")
    interval = float(transport.get("unacked_restore_interval") or 0)
    throttle = int(transport.get("unacked_restore_throttle", KOMBU_RESTORE_THROTTLE) or 1)
    if not honoured:
        interval, throttle = KOMBU_RESTORE_INTERVAL, KOMBU_RESTORE_THROTTLE
    return Sweep(
        visibility=float(visibility or KOMBU_VISIBILITY_TIMEOUT),
        visibility_set=bool(visibility),
        interval=interval if interval > 0 else KOMBU_RESTORE_INTERVAL,
        throttle=max(1, throttle),
        options_set=any(
            k in transport for k in ("unacked_restore_interval", "unacked_restore_throttle")
        ),
        honoured=honoured,
    )


@dataclass
class Clock:
    """When things happened, in the run's own seconds (the console's ``[t=...]``)."""

    origin: float = 0.0
    end: float | None = None  # the run_end event
    end_reason: str | None = None
    ready: dict[str, float] = field(default_factory=dict)  # worker -> when it last became ready
    launched: dict[str, float] = field(default_factory=dict)  # worker -> its last launch
    dead: dict[str, float] = field(default_factory=dict)  # worker -> when it exited or was killed
    faults: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> fault event
    # task_id -> when its latest countdown/ETA message is due (``due`` of dispatch / RETRY end)
    due: dict[str, float] = field(default_factory=dict)

    def t(self, ts: float | None) -> float | None:
        return None if ts is None else ts - self.origin

    def live_workers(self) -> dict[str, float]:
        """Workers ready and not dead at the end: worker -> when it became ready."""
        return {w: ts for w, ts in self.ready.items() if self.dead.get(w, -1.0) < ts}

    def launched_before(self, worker: str, ready: float) -> float:
        """When the worker ready at ``ready`` was launched (``ready`` itself if unrecorded)."""
        launched = self.launched.get(worker, ready)
        return launched if launched <= ready else ready

    def fault_text(self, index: int | None) -> str:
        fault = self.faults.get(index) if index is not None else None
        if fault is None:
            return "" if index is None else f"fault {index}"
        return f"fault {index} {fault.get('kind')} at {self.t(fault['ts']):.1f}s"


def clock_of(history: list[h.Event]) -> Clock:
    """The run's clock: t=0 is the nemesis's (a fault's ``ts - offset``), else the first
    dispatch; the end is the ``run_end`` event."""
    clock = Clock()
    origin = None
    for event in history:
        kind = event["type"]
        if kind == h.FAULT:
            clock.faults.setdefault(event.get("fault"), event)
            if origin is None and event.get("offset") is not None:
                origin = event["ts"] - float(event["offset"])
            if killed_worker(event) and event.get("worker"):
                clock.dead[event["worker"]] = event["ts"]
        elif kind == h.WORKER_READY and event.get("worker"):
            clock.ready[event["worker"]] = event["ts"]
        elif kind == h.WORKER_STARTED and event.get("worker"):
            clock.launched[event["worker"]] = event["ts"]
        elif kind in (h.WORKER_EXIT, h.WORKER_HUNG) and event.get("worker"):
            clock.dead[event["worker"]] = event["ts"]
        elif kind in (h.DISPATCH, h.ATTEMPT_END) and event.get("due") and event.get("task_id"):
            clock.due[event["task_id"]] = float(event["due"])
        elif kind == h.RUN_END:
            clock.end, clock.end_reason = event["ts"], event.get("reason")
    dispatches = [e["ts"] for e in history if e["type"] == h.DISPATCH]
    first = dispatches[0] if dispatches else (history[0]["ts"] if history else 0.0)
    clock.origin = origin if origin is not None else first
    if clock.end is None and history:
        clock.end = history[-1]["ts"]
    return clock


@dataclass(frozen=True)
class Facts:
    """Everything a line may quote, resolved once per run."""

    settings: RunSettings
    sweep: Sweep
    clock: Clock
    broker_notes: tuple[str, ...] = ()

    def at(self, ts: float | None) -> str:
        moment = self.clock.t(ts)
        return "?" if moment is None else f"{moment:.1f}s"

    def run_end(self) -> str:
        how = self.clock.end_reason or "ended"
        limit = f", timeout {self.settings.timeout:g}s" if how == "deadline" else ""
        if how == h.END_ON_REDELIVERY_LOOP:  # run.loop.ProvenLoops
            limit = f": only a proven loop was left, before the timeout {self.settings.timeout:g}s"
        return f"the run ended at {self.at(self.clock.end)} ({how}{limit})"


def task_name(task: TaskReport) -> str:
    head = f"#{task.index} " if task.index is not None else ""
    return f"{head}{task.task}[{task.task_id}]"


def last_attempt(task: TaskReport) -> Attempt | None:
    return task.attempts[-1] if task.attempts else None


def how_it_died(attempt: Attempt, facts: Facts) -> str:
    fault = facts.clock.fault_text(attempt.interrupted_by)
    why = fault or attempt.exit_reason or "its process died"
    where = attempt.worker or "?"
    return f"attempt {attempt.attempt} on {where} died at {facts.at(attempt.died)} ({why})"
