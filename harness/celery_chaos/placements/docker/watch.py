"""How the docker placement watches its worker containers: liveness during start-up, pool
processes, and how a container stopped, all from the engine (no exec into the container).

A mixin of :class:`~celery_chaos.placements.docker.placement.DockerPlacement`, kept apart because it
only reads the engine's state, while the placement creates and faults containers.
"""

from __future__ import annotations

import time
from typing import Any

from celery_chaos.core import exit_reasons
from celery_chaos.placements.base import BackendError, Worker, WorkerExit
from celery_chaos.placements.docker import probes

PID_CACHE_SECONDS = 0.1
ALIVE_CHECK_SECONDS = 0.25


def engine(worker: Worker) -> Any:
    """The docker SDK container behind a worker's testcontainers handle."""
    return worker.handle.get_wrapped_container()


class ContainerWatch:
    """The engine-reading half of the placement's interface (see ``Placement``)."""

    workers: list[Worker]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # cooperative: the placement's own __init__ follows
        self._pids: dict[str, tuple[float, set[int]]] = {}
        self._alive_checked = 0.0
        self._exits_checked = 0.0
        self._reaped: set[str] = set()  # workers whose stop was already reported

    def check_workers_alive(self, names: set[str]) -> None:
        """Inspect each awaited worker container at most every ALIVE_CHECK_SECONDS: the ready
        wait polls every 10 ms, and an inspect call that often slows the engine starting it."""
        now = time.monotonic()
        if now - self._alive_checked < ALIVE_CHECK_SECONDS:
            return
        self._alive_checked = now
        for worker in self.workers:
            if worker.name not in names:
                continue
            container = engine(worker)
            container.reload()
            if container.status == "exited":
                tail = container.logs(tail=3).decode(errors="replace").strip()
                raise BackendError(
                    f"worker container {container.name} exited during startup: {tail}"
                )

    def _live_pids(self, worker: Worker) -> set[int]:
        cached = self._pids.get(worker.name)
        if cached and time.monotonic() - cached[0] < PID_CACHE_SECONDS:
            return cached[1]
        container = engine(worker)
        container.reload()
        pids: set[int] = set()
        if container.status == "running":
            pids = probes.live_pids(container)
        elif container.status == "paused":
            pids = cached[1] if cached else set()
        self._pids[worker.name] = (time.monotonic(), pids)
        return pids

    def process_alive(self, worker: Worker | None, pid: int) -> bool:
        return worker is not None and pid in self._live_pids(worker)

    def worker_exit_reason(self, worker: Worker | None) -> str | None:
        if worker is None:
            return None
        container = engine(worker)
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Running") or state.get("Paused"):
            return None
        code, oom_killed = state.get("ExitCode"), state.get("OOMKilled")
        return f"container exited (ExitCode={code}, OOMKilled={oom_killed})"

    def worker_log(self, worker: Worker) -> list[str]:
        """The container's last 200 lines of output ([] once it is removed)."""
        try:
            return engine(worker).logs(tail=200).decode(errors="replace").splitlines()
        except Exception:  # noqa: BLE001 - removed with the run: nothing to read
            return []

    def reap_worker_exits(self, force: bool = False) -> list[WorkerExit]:
        """Worker containers that stopped since the last call, each once: the exit code (above
        128: the signal) and the log lines that explain it. Read at most every
        ``ALIVE_CHECK_SECONDS`` (an engine call per worker) unless ``force`` (the run's last
        look before its end and its snapshot: a crash in those last moments must be seen)."""
        now = time.monotonic()
        if not force and now - self._exits_checked < ALIVE_CHECK_SECONDS:
            return []
        self._exits_checked = now
        exits = []
        for worker in self.workers:
            state = None if worker.name in self._reaped else _stopped_state(engine(worker))
            if state is None:
                continue
            self._reaped.add(worker.name)
            code = int(state.get("ExitCode") or 0)
            lines = self.worker_log(worker)
            exits.append(
                WorkerExit(
                    worker=worker.name,
                    pid=0,  # the container's PID 1; its host pid is gone with it
                    exitcode=code if code <= 128 else None,
                    signal=code - 128 if code > 128 else None,
                    log_tail=exit_reasons.explaining_tail(lines),
                )
            )
        return exits


def _stopped_state(container: Any) -> dict[str, Any] | None:
    """The engine's State of a container that has stopped (None while it runs, is paused or is
    already removed)."""
    try:
        container.reload()
    except Exception:  # removed with the run: nothing to report
        return None
    state = container.attrs.get("State", {})
    if state.get("Running") or state.get("Paused") or state.get("Status") == "created":
        return None
    return state
