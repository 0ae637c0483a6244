"""The barrier before a verdict: every event the workers sent is in the ledger.

The agent sends events without waiting for a reply (``agent.ledger_wire``): a returned ``send``
has handed the bytes to the kernel, not yet to Redis. Redis reads a connection in order and frees
it only once it has read the connection's end, so when no agent connection (``CLIENT SETNAME
chaos-agent-<pid>``) is left in ``CLIENT LIST``, every byte a worker sent has been applied. The
run therefore SIGKILLs its (already frozen) workers once the broker has been inspected, waits for
their connections to go, and only then reads the history. A barrier that times out is an error,
never a verdict on a history that may still be in flight.
"""

from __future__ import annotations

import time

import redis

from celery_chaos.agent.ledger_wire import CLIENT_NAME_PREFIX
from celery_chaos.placements import BackendError, Placement

BARRIER_SECONDS = 10.0


def agent_connections(client: redis.Redis) -> list[str]:
    """Names of the agent connections the ledger still holds open."""
    return [
        c["name"] for c in client.client_list() if c.get("name", "").startswith(CLIENT_NAME_PREFIX)
    ]


def wait_agents_gone(client: redis.Redis, timeout: float = BARRIER_SECONDS) -> float:
    """Seconds until no agent connection was left; BackendError if some still are at
    ``timeout`` (their events may not all be in)."""
    began = time.monotonic()
    while left := agent_connections(client):
        if time.monotonic() - began > timeout:
            raise BackendError(
                f"ledger barrier: {len(left)} agent connection(s) still open {timeout:g}s after "
                f"the workers were killed ({', '.join(sorted(left)[:5])}): the history may be "
                "incomplete, no verdict taken"
            )
        time.sleep(0.005)
    return time.monotonic() - began


def kill_workers_and_wait(backend: Placement, timeout: float = BARRIER_SECONDS) -> float:
    """SIGKILL every worker (the placement's own kill; one already gone is skipped), then wait
    for the ledger to have read all they sent. Returns the seconds waited for the ledger."""
    assert backend.ledger is not None
    for worker in backend.workers:
        try:
            backend.kill_worker(worker)
        except Exception:  # noqa: BLE001 - gone already: its connections end on their own
            pass
    return wait_agents_gone(backend.ledger.client, timeout)
