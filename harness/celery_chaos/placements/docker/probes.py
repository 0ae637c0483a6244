"""What the engine and this host say about a worker container, beyond what testcontainers asks.

Liveness of a pool process comes from the engine's process list plus this host's ``/proc``
(``NSpid`` maps a host pid to the container's namespace), with no exec: fast enough to poll.
OOM kills come from the engine's event stream: a pool child's OOM kill leaves the container
running, so ``State.OOMKilled`` (set only when PID 1 dies) would miss it.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def oom_events(client: Any, container: Any) -> int:
    """OOM events the engine reported for ``container`` since it was created."""
    events = client.events(
        since=_created(container),
        until=int(time.time()),  # now: a future "until" makes the engine wait for it
        filters={"container": container.id, "event": "oom"},
        decode=True,
    )
    return sum(1 for _ in events)


def _created(container: Any) -> int:
    """The container's creation time as epoch seconds (for the engine's events filter)."""
    created = datetime.fromisoformat(container.attrs["Created"][:19])
    return int(created.replace(tzinfo=timezone.utc).timestamp()) - 1


def memory_usage(container: Any) -> int:
    """Bytes the container's cgroup uses, as the engine's stats report them."""
    stats = container.stats(stream=False)
    return int(stats.get("memory_stats", {}).get("usage", 0))


def live_pids(container: Any) -> set[int]:
    """Pids (in the container's namespace) of its live processes; host /proc when the engine
    runs on this host, else ``ps`` inside the container."""
    pids = pids_via_host_proc(container)
    return pids if pids is not None else pids_via_exec(container)


def pids_via_host_proc(container: Any) -> set[int] | None:
    """Live container-namespace pids, from the engine's process list and this host's /proc
    (fast: no exec). None when the engine is not on this host (its pids are not in our /proc)."""
    try:
        top = container.top(ps_args="-o pid")
    except Exception:
        return None
    rows = top.get("Processes") or []
    pids: set[int] = set()
    for row in rows:
        fields = _proc_status(int(row[0]))
        if fields is None or fields.get("State", "").startswith("Z"):
            continue  # gone since the engine listed it, or a zombie
        namespaced = fields.get("NSpid", "").split()
        if not namespaced:
            return None
        pids.add(int(namespaced[-1]))
    return pids if pids or not rows else None


def _proc_status(pid: int) -> dict[str, str] | None:
    """The fields of ``/proc/<pid>/status``, or None if there is no such process here."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def pids_via_exec(container: Any) -> set[int]:
    """Live pids as ``ps`` inside the container sees them (works with a remote engine)."""
    result = container.exec_run(["ps", "-eo", "pid=,stat="])
    pids = set()
    for line in result.output.decode().splitlines():
        pid, _, stat = line.strip().partition(" ")
        if pid.isdigit() and not stat.strip().startswith("Z"):
            pids.add(int(pid))
    return pids


def address_on(container: Any, network: str) -> str | None:
    """The container's IP address on ``network`` (None when it is not attached)."""
    container.reload()
    networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
    return (networks.get(network) or {}).get("IPAddress") or None
