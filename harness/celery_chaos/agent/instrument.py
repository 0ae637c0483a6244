"""The agent: instrumentation that runs *inside* Celery workers.

One line in the user's app turns it on::

    from celery_chaos.agent.instrument import install
    install(app)

or, without touching the app at all, start workers with
``celery -A celery_chaos.agent.bootstrap worker``
and ``CHAOS_APP=myproject.celery:app`` (that is what ``celery-chaos repro`` does).

When ``CHAOS_LEDGER_URL`` is not set the agent records nothing and the public API below is a
no-op, so instrumented tasks run unchanged in production.

Public API for tasks: :func:`checkpoint`, :func:`side_effect`, :func:`lock`, :func:`store`.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from celery import Celery, signals

from celery_chaos.agent import app_settings, results
from celery_chaos.agent.ledger_sync import SyncLedger
from celery_chaos.agent.ledger_wire import WireLedger
from celery_chaos.core import history as h

LEDGER_URL_ENV = "CHAOS_LEDGER_URL"
BROKER_URL_ENV = "CHAOS_BROKER_URL"
CELERY_CONFIG_ENV = "CHAOS_CELERY_CONFIG"
RESULT_BACKEND_ENV = results.RESULT_BACKEND_ENV
# "async": events are sent without waiting for a reply (ledger_wire); anything else: each write
# waits for the ledger's answer. The harness sets async only where a barrier proves the writers'
# bytes are in before the history is read (run.barrier).
WRITES_ENV = "CHAOS_AGENT_WRITES"
ASYNC_WRITES, SYNC_WRITES = "async", "sync"
# Checkpoint names the harness may arm as breakpoints ("a,b"), "*" or unset: every one. Only
# these ask the ledger whether they are armed; the rest are fire-and-forget.
ARMABLE_ENV = "CHAOS_ARMABLE_CHECKPOINTS"
BREAKPOINT_WAIT_SECONDS = 120

# The attempt running in this thread: ``attempt`` (task_id, number; the number is None while
# only the ledger knows it) and ``token`` (names the attempt to the ledger when writes are async).
_current = threading.local()
_ledgers: dict[int, SyncLedger] = {}
_stores: dict[tuple[int, str], Any] = {}
_wires: dict[int, WireLedger] = {}
_installed_apps: set[int] = set()


class LockHeld(RuntimeError):
    """Raised by :func:`lock` when another task holds the lock."""


def ledger() -> SyncLedger | None:
    """This process's ledger connection (a fresh one after fork), or None when not under test."""
    url = os.environ.get(LEDGER_URL_ENV)
    if not url:
        return None
    pid = os.getpid()
    if pid not in _ledgers:
        _ledgers.clear()
        _ledgers[pid] = SyncLedger(url)
    return _ledgers[pid]


def wire() -> WireLedger | None:
    """This process's fire-and-forget connection (a fresh one after fork), or None when writes
    are synchronous or the agent is not under test."""
    url = os.environ.get(LEDGER_URL_ENV)
    if not url or os.environ.get(WRITES_ENV) != ASYNC_WRITES:
        return None
    pid = os.getpid()
    if pid not in _wires:
        _wires.clear()
        _wires[pid] = WireLedger(url)
    return _wires[pid]


def store() -> Any:
    """The Redis the sample app uses as its database (the ledger server, never faulted): a
    ``redis.Redis`` where the app has redis-py, else the agent's own client (``resp.StoreClient``:
    the agent never needs redis-py, an app on RabbitMQ has none).

    Everything the agent sent before is applied first (a synchronous PING on its connection), so
    the app's own commands never overtake this attempt's events."""
    current = _synced()
    if current is None:
        return None
    key = (os.getpid(), os.environ[LEDGER_URL_ENV])  # a fresh one after fork
    if key not in _stores:
        _stores.clear()
        try:
            import redis  # the app's own, when it has it: the API its code expects
        except ImportError:
            _stores[key] = current.client
        else:
            _stores[key] = redis.Redis.from_url(key[1], socket_timeout=10)
    return _stores[key]


def _synced() -> SyncLedger | None:
    """The synchronous ledger once everything sent fire-and-forget before is applied."""
    current, link = ledger(), wire()
    if link is not None:
        link.flush()
    return current


def current_attempt() -> tuple[str, int | None] | None:
    return getattr(_current, "attempt", None)


def _record(event_type: str, **fields: Any) -> None:
    link = wire()
    if link is not None:
        link.record(event_type, pid=os.getpid(), **fields)
        return
    current = ledger()
    if current is not None:
        current.record(event_type, pid=os.getpid(), **fields)


def _record_in_attempt(event_type: str, task_id: str, end: bool = False, **fields: Any) -> None:
    """An event of this thread's running attempt, numbered by the ledger when writes are async
    (``end``: the attempt is over, the ledger forgets its token)."""
    link, token = wire(), getattr(_current, "token", None)
    if link is not None and token is not None:
        link.record_numbered(event_type, token, end, pid=os.getpid(), task_id=task_id, **fields)
        return
    attempt = current_attempt()
    _record(event_type, task_id=task_id, attempt=attempt[1] if attempt else None, **fields)


def armable(name: str) -> bool:
    """Whether the harness may arm checkpoint ``name`` (unset: assume it may)."""
    names = os.environ.get(ARMABLE_ENV)
    return names is None or names.strip() == "*" or name in names.split(",")


def checkpoint(name: str) -> None:
    """Mark progress inside a task; the harness can arm a fault to fire exactly here.

    If the harness armed this checkpoint as a breakpoint, the task blocks until the harness
    releases it, so the fault lands while the task is provably at this point.
    """
    current, attempt = ledger(), current_attempt()
    if current is None or attempt is None:
        return
    task_id, number = attempt
    link, token = wire(), getattr(_current, "token", None)
    if link is not None and token is not None:
        if not armable(name):
            link.record_numbered(h.CHECKPOINT, token, task_id=task_id, name=name, pid=os.getpid())
            return
        armed, number = link.checkpoint(token, task_id, name, pid=os.getpid())
        if armed and number is not None:
            current.wait_for_release(
                h.breakpoint_id(task_id, name, number), BREAKPOINT_WAIT_SECONDS
            )
        return
    assert number is not None  # synchronous writes number the attempt at its start
    point = h.breakpoint_id(task_id, name, number)
    event = h.make_event(h.CHECKPOINT, task_id=task_id, attempt=number, name=name, pid=os.getpid())
    if current.checkpoint(event, point):
        current.wait_for_release(point, BREAKPOINT_WAIT_SECONDS)


def side_effect(key: str, applied: bool = True, idempotent: bool = False) -> None:
    """Record that an external effect (email, payment, webhook) was applied, or only attempted.

    A non-idempotent task calls ``side_effect("email:42")`` each time it sends. An idempotent
    task calls ``side_effect(key, applied=did_apply, idempotent=True)`` so the checker can tell
    attempted from applied duplicates.
    """
    attempt = current_attempt()
    if attempt is None:
        _record(
            h.SIDE_EFFECT,
            task_id=None,
            attempt=None,
            key=key,
            applied=applied,
            idempotent=idempotent,
        )
        return
    _record_in_attempt(h.SIDE_EFFECT, attempt[0], key=key, applied=applied, idempotent=idempotent)


def apply_once(key: str) -> bool:
    """Idempotency-key guard: True the first time ``key`` is seen (and records the effect)."""
    current = _synced()
    if current is None:
        return True
    applied = current.client.set(h.EFFECT_KEY_PREFIX + key, "1", nx=True)
    side_effect(key, applied=applied, idempotent=True)
    return applied


_RELEASE_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@contextmanager
def lock(name: str) -> Iterator[None]:
    """Hold a lock the way real apps do: a flag in Redis with no expiry, owned by the task id.

    A redelivered attempt of the same task may reclaim its own lock (the fix good apps use);
    a lock whose owner died and was never redelivered stays held: the checker reports it stuck.
    """
    current, attempt = _synced(), current_attempt()
    if current is None or attempt is None:
        yield
        return
    client = current.client
    task_id = attempt[0]
    key = h.LOCK_KEY_PREFIX + name
    acquired = bool(client.set(key, task_id, nx=True))
    holder = None if acquired else (client.get(key) or b"").decode()
    reclaimed = holder == task_id
    if not (acquired or reclaimed):
        _record_in_attempt(h.LOCK_BLOCKED, task_id, name=name, holder=holder)
        raise LockHeld(f"lock {name!r} is held by task {holder}")
    _record_in_attempt(h.LOCK_ACQUIRED, task_id, name=name, reclaimed=reclaimed)
    try:
        yield
    finally:
        client.eval(_RELEASE_IF_OWNER, 1, key, task_id)
        _record_in_attempt(h.LOCK_RELEASED, task_id, name=name)


# --- Celery signal handlers -------------------------------------------------------------


# Version key (as ``expect_when`` names it) -> distribution name.
WORKER_LIBRARIES = {
    "celery": "celery",
    "kombu": "kombu",
    "billiard": "billiard",
    "redis-py": "redis",
}


def worker_library_versions() -> dict[str, str | None]:
    """The Celery stack *this worker* runs (a matrix runs workers from other environments than
    the harness's): what verdicts and per-version expectations are about."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for key, distribution in WORKER_LIBRARIES.items():
        found[key] = _distribution_version(distribution)
    return found


def _distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    url, origin = results.worker_backend(getattr(sender, "app", None))
    current = ledger()
    if url and current is not None:  # the harness reads the backend back (run.results_state)
        current.client.set(results.RAW_URL_KEY, url)  # the agent's own client
    _record(
        h.WORKER_READY,
        worker=getattr(sender, "hostname", None),
        host=socket.gethostname(),
        versions=worker_library_versions(),
        result_backend=results.masked(url),
        result_backend_origin=origin,
        settings=app_settings.effective_settings(getattr(sender, "app", None)),
    )


def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _record(h.WORKER_SHUTDOWN, worker=getattr(sender, "hostname", None))


def _on_pool_process_init(**_: Any) -> None:
    _record(h.POOL_PROCESS_STARTED, ppid=os.getppid())


def on_prerun(task_id: str = "", task: Any = None, **_: Any) -> None:
    current = ledger()
    if current is None:
        return
    request = task.request
    delivery = request.delivery_info or {}
    fields = {
        "pid": os.getpid(),
        "task": task.name,
        "worker": request.hostname,
        "host": socket.gethostname(),
        "redelivered": bool(delivery.get("redelivered")),
        "retries": request.retries,
        "queue": _delivery_queue(task.app, delivery),
        "stores_result": results.stores_result(task),
    }
    link = wire()
    if link is None:
        _current.attempt, _current.token = (task_id, current.start_attempt(task_id, **fields)), None
        return
    _current.token = os.urandom(8).hex()  # the ledger numbers the attempt under this name
    link.start_attempt(task_id, _current.token, **fields)
    _current.attempt = (task_id, None)


def _delivery_queue(app: Celery, delivery: dict[str, Any]) -> str | None:
    """The queue a message came from (the checker looks up its delivery limit): the consumed
    queue bound with the delivery's exchange and routing key, else the routing key (the queue's
    name when published through the default exchange)."""
    exchange, key = delivery.get("exchange") or "", delivery.get("routing_key")
    try:
        for name, queue in app.amqp.queues.items():
            bound = queue.exchange.name if queue.exchange is not None else ""
            if queue.routing_key == key and (bound or "") == exchange:
                return name
    except Exception:  # never let bookkeeping cost the attempt_start record
        pass
    return key


def _on_postrun(task_id: str = "", state: str | None = None, retval: Any = None, **_: Any) -> None:
    attempt = current_attempt()
    # the run may not end before a retry is due (run.loop.DueTimes)
    due = {"due": retry_due(retval)} if state == "RETRY" else {}
    if attempt and attempt[0] == task_id:
        _record_in_attempt(h.ATTEMPT_END, task_id, end=True, state=state, **due)
    else:
        _record(h.ATTEMPT_END, task_id=task_id, attempt=None, state=state, **due)
    _current.attempt = _current.token = None


def retry_due(retry: Any) -> float | None:
    """When a retry may run (epoch seconds): ``Retry.when`` is its countdown in seconds or its
    ETA (a naive one is UTC, Celery's default ``enable_utc``)."""
    when = getattr(retry, "when", None)
    try:  # never let bookkeeping cost the attempt_end record
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        if isinstance(when, datetime):
            return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
        return time.time() + float(when) if isinstance(when, (int, float)) else None
    except ValueError:
        return None


def _on_failure(task_id: str = "", exception: BaseException | None = None, **_: Any) -> None:
    attempt = current_attempt()
    in_attempt = bool(attempt and attempt[0] == task_id)
    fields = {
        "exc_type": type(exception).__name__ if exception else None,
        "exc": str(exception)[:500] if exception else None,
        "origin": "task" if in_attempt else "worker",
    }
    if in_attempt:
        _record_in_attempt(h.TASK_FAILURE, task_id, **fields)
    else:
        _record(h.TASK_FAILURE, task_id=task_id, attempt=None, **fields)


def apply_environment_config(app: Celery) -> None:
    """Apply the harness's broker URL and Celery settings from the environment, if any."""
    if os.environ.get(BROKER_URL_ENV):
        app.conf.broker_url = os.environ[BROKER_URL_ENV]
    overrides = os.environ.get(CELERY_CONFIG_ENV)
    if overrides:
        app.conf.update(json.loads(overrides))
    results.choose_backend(app)  # the scenario's, the harness's of the app's kind, or the app's


def install(app: Celery) -> Celery:
    """Instrument ``app``: connect the recording signal handlers once per process."""
    apply_environment_config(app)
    if id(app) in _installed_apps:
        return app
    _installed_apps.add(id(app))
    signals.worker_ready.connect(_on_worker_ready, weak=False)
    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False)
    signals.worker_process_init.connect(_on_pool_process_init, weak=False)
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(_on_postrun, weak=False)
    signals.task_failure.connect(_on_failure, weak=False)
    return app
