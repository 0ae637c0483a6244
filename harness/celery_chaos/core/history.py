"""The history: the ordered record of everything that happened in a run.

Every event is a flat JSON object with at least ``type`` and ``ts`` (epoch seconds, written by
the recorder). Events live in one Redis list (``chaos:history``) on the *ledger* Redis, a server
that no fault ever touches, so the observer is never in the blast radius. The list order is the
total order of the history: RPUSH is atomic, so two writers can never interleave an event.

Writers: the agent inside workers (attempts, checkpoints, side effects, locks, failures) and the
harness itself (dispatches, faults, process exits, worker starts). The checker only reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

HISTORY_KEY = "chaos:history"
ATTEMPT_COUNTER_KEY = "chaos:attempts:{task_id}"
BREAKPOINTS_KEY = "chaos:breakpoints"
RELEASE_KEY = "chaos:release:{point}"
LOCK_KEY_PREFIX = "chaos:lock:"
EFFECT_KEY_PREFIX = "chaos:effect:"

# Event types. Harness-written first, agent-written after.
# dispatch: task_id, task, index, args, kwargs, options; ``due`` (epoch s) when a countdown/ETA
# holds it: the run may not end before it while a live worker may hold the message
DISPATCH = "dispatch"
WORKER_STARTED = "worker_started"  # worker, pid (harness view: process launched)
# worker_ready: worker, pid, host, versions, result_backend (masked URL or None) and
# result_backend_origin (harness|app|app-kind|scenario: who chose it), settings (the effective
# values explanations read: agent.app_settings) (agent: consumer is consuming)
WORKER_READY = "worker_ready"
WORKER_SHUTDOWN = "worker_shutdown"  # worker, pid (agent: clean shutdown began)
POOL_PROCESS_STARTED = "pool_process_started"  # pid, ppid
FAULT = "fault"  # fault, kind, status (injected|missed|injection_error), target, detail
PROCESS_EXIT = "process_exit"  # pid, worker, task_id, attempt, reason, reason_code
WORKER_EXIT = "worker_exit"  # worker, pid, exitcode, signal, log_tail (a main process exited)
WORKER_HUNG = "worker_hung"  # worker, pid, log_tail (Celery declared it dead; alive at the end)
# attempt_start: task_id, task, attempt, worker, pid, redelivered, queue, stores_result (its
# outcome goes to a result backend: read back after the run, core.invariants)
ATTEMPT_START = "attempt_start"
# attempt_end: task_id, attempt, pid, state (SUCCESS|FAILURE|RETRY|...); a RETRY's ``due``
# (epoch s): when the retry it published may run (its countdown/ETA; None if unknown)
ATTEMPT_END = "attempt_end"
TASK_FAILURE = "task_failure"  # task_id, pid, exc_type, exc (child or worker main process)
CHECKPOINT = "checkpoint"  # task_id, attempt, name, pid
SIDE_EFFECT = "side_effect"  # task_id, attempt, key, applied, idempotent
LOCK_ACQUIRED = "lock_acquired"  # task_id, attempt, name, reclaimed
LOCK_RELEASED = "lock_released"  # task_id, attempt, name
LOCK_BLOCKED = "lock_blocked"  # task_id, attempt, name, holder
WORKFLOW = "workflow"  # workflow, kind, tree, members (core.workflows.layout; before dispatches)
REVOKE = "revoke"  # task_id, index, terminate (recorded just before app.control.revoke)
RUN_END = "run_end"  # reason (quiescent|deadline|interrupted|redelivery_loop)
# run_end reason: only tasks in a proven redelivery loop were left (run.loop.ProvenLoops)
END_ON_REDELIVERY_LOOP = "redelivery_loop"

Event = dict[str, Any]


def breakpoint_id(task_id: str, checkpoint: str, attempt: int) -> str:
    """The name under which a checkpoint of one attempt is armed as a breakpoint."""
    return f"{task_id}|{checkpoint}|{attempt}"


def make_event(event_type: str, **fields: Any) -> Event:
    return {"type": event_type, "ts": time.time(), **fields}


def decode(raw: Iterable[bytes], start: int) -> Iterator[Event]:
    """Parse raw list items into events numbered from ``start``."""
    for seq, item in enumerate(raw, start=start):
        event = json.loads(item)
        event["seq"] = seq
        yield event


def write_jsonl(events: Iterable[Event], path: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, default=str) + "\n")


def read_jsonl(path: str) -> list[Event]:
    with open(path, encoding="utf-8") as source:
        return [json.loads(line) for line in source if line.strip()]
