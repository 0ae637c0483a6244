"""The docker backend: broker, ledger and workers as containers (Testcontainers + docker SDK).

Layout of one run, every object labelled ``celery-chaos.run=<id>`` so :func:`cleanup` can find
it after a crash (Testcontainers' Ryuk reaper is not required):

- network ``chaos-<id>-broker``: broker + workers (``partition`` cuts a worker off this one);
- network ``chaos-<id>-ledger``: ledger + workers (never cut: the observer stays connected);
- ports published on 127.0.0.1 only, at a port fixed when the container is created so a broker
  restart keeps it; unprivileged worker containers, no Docker socket inside.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from celery_chaos.agent import instrument as agent
from celery_chaos.backends.base import Backend, BackendError, Worker, worker_app, worker_arguments
from celery_chaos.backends.local.redis_server import free_port
from celery_chaos.core import history as h
from celery_chaos.core.scenario import FAULT_KINDS, Scenario, parse_size
from celery_chaos.ledger import Ledger

RUN_LABEL = "celery-chaos.run"
ROLE_LABEL = "celery-chaos.role"
REDIS_PORT = 6379
PID_CACHE_SECONDS = 0.1
UNLIMITED_MEMORY = 64 * 1024**3
AGENT_MOUNT_POINT = "/opt/celery-chaos-agent"


def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=30)


def cleanup(run_id: str | None = None, client: Any = None) -> list[str]:
    """Remove every container and network labelled by celery-chaos (one run, or all runs)."""
    client = client or docker_client()
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    removed = []
    for container in client.containers.list(all=True, filters={"label": selector}):
        container.remove(force=True)
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": selector}):
        network.remove()
        removed.append(f"network {network.name}")
    return removed


class DockerBackend(Backend):
    name = "docker"
    supported_faults = frozenset(FAULT_KINDS)

    def __init__(
        self,
        scenario: Scenario,
        run_dir: Path,
        log: Callable[[str], None] = print,
        worker_image: str | None = None,
        redis_image: str | None = None,
        mount_agent: bool = True,
    ):
        super().__init__(scenario, run_dir, log)
        from celery_chaos.backends.docker import images

        self.worker_image = worker_image or scenario.workers.image or images.DEFAULT_WORKER_IMAGE
        self.redis_image = redis_image or scenario.broker.image or images.DEFAULT_REDIS_IMAGE
        self.mount_agent = mount_agent
        self.run_id = uuid.uuid4().hex[:10]
        self.labels = {RUN_LABEL: self.run_id}
        self.client: Any = None
        self.networks: dict[str, Any] = {}
        self.services: dict[str, Any] = {}  # "broker"/"ledger" -> container
        self.passwords = {role: secrets.token_hex(16) for role in ("broker", "ledger")}
        self.host_ports: dict[str, int] = {}
        self._pids: dict[str, tuple[float, set[int]]] = {}
        self._next_index = 0

    def check_runnable(self) -> None:
        super().check_runnable()
        from celery_chaos.backends.docker import images

        ok, reason = images.engine_available()
        if not ok:
            raise BackendError(f"--backend docker: {reason}")
        self.client = docker_client()
        for image in {self.worker_image, self.redis_image}:
            if not self._have_image(image):
                raise BackendError(
                    f"--backend docker: image {image} is not available (build it with"
                    " `celery-chaos images build --offline`, or pass --worker-image/--redis-image)"
                )

    def _have_image(self, image: str) -> bool:
        import docker

        try:
            self.client.images.get(image)
            return True
        except docker.errors.ImageNotFound:
            try:
                self.client.images.pull(image)
                return True
            except docker.errors.APIError:
                return False

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self.client = self.client or docker_client()
        for role in ("broker", "ledger"):
            self.networks[role] = self.client.networks.create(
                f"chaos-{self.run_id}-{role}", labels=self.labels
            )
        self.services["ledger"] = self._start_redis("ledger", persistence="none")
        self.services["broker"] = self._start_redis("broker", self.scenario.broker.persistence)
        self.ledger = Ledger(self._redis("ledger"))
        names = [self._spawn_worker().name for _ in range(self.scenario.workers.count)]
        if names:
            self.wait_ready(names)

    def close(self) -> None:
        if self.client is None:
            return
        self._save_logs()
        cleanup(self.run_id, self.client)

    def _save_logs(self) -> None:
        containers = {f"worker-w{w.index}": w.handle for w in self.workers} | self.services
        for name, container in containers.items():
            try:
                (self.logs_dir / f"{name}.log").write_bytes(container.logs())
            except Exception:  # a log we cannot read must not stop the cleanup
                continue

    def _start_redis(self, role: str, persistence: str) -> Any:
        port = free_port()
        command = [
            "redis-server",
            "--requirepass",
            self.passwords[role],
            "--save",
            "",
            "--appendonly",
            "yes" if persistence == "aof" else "no",
            "--appendfsync",
            "always",
            "--protected-mode",
            "no",
        ]
        container = self.client.containers.run(
            self.redis_image,
            command,
            detach=True,
            name=f"chaos-{self.run_id}-{role}",
            labels=self.labels | {ROLE_LABEL: role},
            network=self.networks[role].name,
            ports={f"{REDIS_PORT}/tcp": ("127.0.0.1", port)},
        )
        self.host_ports[role] = port
        self._wait_redis(role)
        return container

    def _redis(self, role: str) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.host_ports[role],
            password=self.passwords[role],
            socket_timeout=5,
            socket_connect_timeout=2,
        )

    def _wait_redis(self, role: str, deadline: float = 30.0) -> None:
        client, end = self._redis(role), time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise BackendError(
            f"{role} container ({self.redis_image}) did not answer within {deadline}s"
        )

    def _internal_url(self, role: str) -> str:
        return f"redis://:{self.passwords[role]}@chaos-{self.run_id}-{role}:{REDIS_PORT}/0"

    @property
    def broker_url(self) -> str:
        return f"redis://:{self.passwords['broker']}@127.0.0.1:{self.host_ports['broker']}/0"

    def broker_client(self) -> redis.Redis:
        return self._redis("broker")

    # --- workers ---------------------------------------------------------------------
    def _spawn_worker(self) -> Worker:
        index = self._next_index
        self._next_index += 1
        spec = self.scenario.workers
        name = f"w{index}@chaos-{self.run_id}"
        app, app_env = worker_app(spec.app)
        env = (
            dict(spec.env)
            | app_env
            | {
                agent.LEDGER_URL_ENV: self._internal_url("ledger"),
                agent.BROKER_URL_ENV: self._internal_url("broker"),
                agent.CELERY_CONFIG_ENV: json.dumps(self.scenario.celery),
                "PYTHONUNBUFFERED": "1",
            }
        )
        command = ["celery", *worker_arguments(app, name, spec.pool, spec.concurrency)]
        options: dict[str, Any] = self._agent_mount(env)
        if spec.memory_limit:
            limit = parse_size(spec.memory_limit)
            options |= {"mem_limit": limit, "memswap_limit": limit}
        container = self.client.containers.create(
            self.worker_image,
            command,
            name=f"chaos-{self.run_id}-w{index}",
            environment=env,
            labels=self.labels | {ROLE_LABEL: "worker"},
            network=self.networks["broker"].name,
            **options,
        )
        self.networks["ledger"].connect(container)
        container.start()
        worker = Worker(index=index, name=name, handle=container)
        self.workers.append(worker)
        assert self.ledger is not None
        self.ledger.record(h.WORKER_STARTED, worker=name, container=container.name)
        return worker

    def _agent_mount(self, env: dict[str, str]) -> dict[str, Any]:
        """For a user's own image, mount this host's agent read-only instead of requiring a
        rebuild: the image only needs celery and redis, which every Redis-backed app has."""
        from celery_chaos.backends.docker import images

        if not self.mount_agent or self.worker_image == images.DEFAULT_WORKER_IMAGE:
            return {}
        image_env = self.client.images.get(self.worker_image).attrs["Config"].get("Env") or []
        existing = next((e.split("=", 1)[1] for e in image_env if e.startswith("PYTHONPATH=")), "")
        env["PYTHONPATH"] = ":".join(filter(None, [AGENT_MOUNT_POINT, existing]))
        source = str(Path(agent.__file__).resolve().parents[1])  # the celery_chaos package
        return {"volumes": {source: {"bind": f"{AGENT_MOUNT_POINT}/celery_chaos", "mode": "ro"}}}

    def check_workers_alive(self, names: set[str]) -> None:
        for worker in self.workers:
            if worker.name in names:
                worker.handle.reload()
                if worker.handle.status == "exited":
                    tail = worker.handle.logs(tail=3).decode(errors="replace").strip()
                    raise BackendError(
                        f"worker container {worker.handle.name} exited during startup: {tail}"
                    )

    # --- faults ----------------------------------------------------------------------
    def kill_pool_process(self, worker: Worker, pid: int) -> str:
        result = worker.handle.exec_run(["kill", "-9", str(pid)])
        if result.exit_code != 0:
            return f"kill -9 {pid} in {worker.handle.name} failed: {result.output.decode().strip()}"
        self._pids.pop(worker.name, None)
        return f"SIGKILL pid {pid} inside container {worker.handle.name}"

    def kill_worker(self, worker: Worker) -> str:
        worker.handle.kill(signal="SIGKILL")
        worker.handle.wait(timeout=30)
        return f"docker kill (SIGKILL) {worker.handle.name}"

    def signal_worker(self, worker: Worker, signame: str) -> str:
        worker.handle.kill(signal=signame)
        return f"{signame} to container {worker.handle.name}"

    def pause_worker(self, worker: Worker, paused: bool) -> str:
        (worker.handle.pause if paused else worker.handle.unpause)()
        return f"docker {'pause' if paused else 'unpause'} {worker.handle.name}"

    def restart_broker(self) -> str:
        broker = self.services["broker"]
        broker.kill(signal="SIGKILL")
        broker.wait(timeout=30)
        broker.start()
        self._wait_redis("broker")
        persistence = self.scenario.broker.persistence
        return f"broker container SIGKILLed and restarted (persistence: {persistence})"

    def partition(self, worker: Worker, connected: bool) -> str:
        network = self.networks["broker"]
        if connected:
            network.connect(worker.handle)
            return f"{worker.handle.name} reconnected to the broker network"
        network.disconnect(worker.handle)
        return f"{worker.handle.name} disconnected from the broker network (ledger still reachable)"

    def _memory_usage(self, worker: Worker) -> int:
        stats = worker.handle.stats(stream=False)
        return int(stats.get("memory_stats", {}).get("usage", 0))

    def oom(self, worker: Worker, headroom: int, wait: float, release: Callable[[], None]) -> str:
        before, usage = self.oom_kills(worker), self._memory_usage(worker)
        limit = usage + headroom
        worker.handle.update(mem_limit=limit, memswap_limit=limit)
        release()
        deadline = time.monotonic() + wait
        while self.oom_kills(worker) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        after = self.oom_kills(worker)
        restore = parse_size(self.scenario.workers.memory_limit or UNLIMITED_MEMORY)
        worker.handle.update(mem_limit=restore, memswap_limit=restore)
        if after == before:
            return f"no OOM kill within {wait}s (limit {limit} bytes); limit lifted"
        name = worker.handle.name
        return f"engine reported an OOM kill in {name} (limit {limit} bytes); limit lifted"

    def oom_kills(self, worker: Worker | None) -> int:
        """OOM events the engine reported for the worker's container since it started."""
        if worker is None:
            return 0
        events = self.client.events(
            since=_created(worker),
            until=int(time.time()),  # now: a future "until" makes the engine wait for it
            filters={"container": worker.handle.id, "event": "oom"},
            decode=True,
        )
        return sum(1 for _ in events)

    def _live_pids(self, worker: Worker) -> set[int]:
        cached = self._pids.get(worker.name)
        if cached and time.monotonic() - cached[0] < PID_CACHE_SECONDS:
            return cached[1]
        pids: set[int] = set()
        worker.handle.reload()
        if worker.handle.status == "running":
            pids = _pids_via_host_proc(worker.handle)
            if pids is None:
                pids = _pids_via_exec(worker.handle)
        elif worker.handle.status == "paused":
            pids = cached[1] if cached else set()
        self._pids[worker.name] = (time.monotonic(), pids)
        return pids

    def process_alive(self, worker: Worker | None, pid: int) -> bool:
        return worker is not None and pid in self._live_pids(worker)

    def worker_exit_reason(self, worker: Worker | None) -> str | None:
        if worker is None:
            return None
        worker.handle.reload()
        state = worker.handle.attrs.get("State", {})
        if state.get("Running") or state.get("Paused"):
            return None
        code, oom_killed = state.get("ExitCode"), state.get("OOMKilled")
        return f"container exited (ExitCode={code}, OOMKilled={oom_killed})"

    def freeze(self) -> None:
        for worker in self.workers:
            worker.handle.reload()
            if worker.handle.status == "running":
                worker.handle.pause()


def _created(worker: Worker) -> int:
    """The container's creation time as epoch seconds (for the engine's events filter)."""
    from datetime import datetime, timezone

    created = datetime.fromisoformat(worker.handle.attrs["Created"][:19])
    return int(created.replace(tzinfo=timezone.utc).timestamp()) - 1


def _pids_via_host_proc(container: Any) -> set[int] | None:
    """Live container-namespace pids, from the engine's process list and this host's /proc
    (fast: no exec). None when the engine is not on this host (its pids are not in our /proc)."""
    try:
        top = container.top(ps_args="-o pid")
    except Exception:
        return None
    pids: set[int] = set()
    for row in top.get("Processes") or []:
        status = Path(f"/proc/{row[0]}/status")
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue  # gone since the engine listed it, or not on this host
        if fields.get("State", "").startswith("Z"):
            continue
        namespaced = fields.get("NSpid", "").split()
        if not namespaced:
            return None
        pids.add(int(namespaced[-1]))
    return pids if pids or not top.get("Processes") else None


def _pids_via_exec(container: Any) -> set[int]:
    """Live pids as ``ps`` inside the container sees them (works with a remote engine)."""
    result = container.exec_run(["ps", "-eo", "pid=,stat="])
    pids = set()
    for line in result.output.decode().splitlines():
        pid, _, stat = line.strip().partition(" ")
        if pid.isdigit() and not stat.strip().startswith("Z"):
            pids.add(int(pid))
    return pids
