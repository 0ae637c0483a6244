"""The containers and networks of a docker-placement run, built on testcontainers-python.

Testcontainers provides the containers (``DockerContainer``, ``RedisContainer``), the networks,
the ``with_*`` builders, the Redis ping wait strategy and, where its image can be had, the Ryuk
reaper. What it lacks for celery-chaos is added here, small and on top:

- a run label on everything, and :func:`cleanup` by that label (after a crash of the harness,
  also where Ryuk cannot run);
- Redis published on 127.0.0.1 only, at a host port fixed at creation so a broker restart keeps
  it (testcontainers binds every interface, at a port the engine may change on restart);
- a worker on two networks before its first instruction (engine API < 1.44 attaches one at
  create, so the others are connected between create and start).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import docker.errors
import redis
from testcontainers.community.redis import PingWaitStrategy, RedisContainer
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.network import Network

from celery_chaos.brokers.redis import RedisBroker
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.docker import images

RUN_LABEL = "celery-chaos.run"
ROLE_LABEL = "celery-chaos.role"
REDIS_PORT = 6379
LOOPBACK = "127.0.0.1"
REDIS_READY_SECONDS = 30
READY_POLL_SECONDS = 0.02  # testcontainers polls once a second by default: too slow here
ENGINE_TIMEOUT = 30
PAUSE_DEADLINE = 5.0  # s to keep asking the engine to pause a running container that refuses
# Where ``{run_dir}`` in a Celery setting points inside every worker container of a run.
WORKER_FILES_MOUNT = "/var/lib/celery-chaos/run"


def docker_client() -> Any:
    """A docker SDK client for what testcontainers has no call for (cleanup, events, stats)."""
    return images.docker_client(timeout=ENGINE_TIMEOUT)


def cleanup(run_id: str | None = None, client: Any = None) -> list[str]:
    """Remove every container and network labelled by celery-chaos (one run, or all runs)."""
    client = client or docker_client()
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    removed = []
    for container in client.containers.list(all=True, filters={"label": selector}):
        container.remove(force=True, v=True)  # with its anonymous volumes (VOLUME)
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": selector}):
        network.reload()  # a suite's shared RabbitMQ container may still be attached: detach it
        for attached in network.attrs.get("Containers") or {}:
            network.disconnect(attached, force=True)
        network.remove()
        removed.append(f"network {network.name}")
    return removed


def run_files_dir(run_dir: Path) -> Path:
    """The run's folder for files workers write (``worker_state_db``...), bind-mounted into
    every worker container so a replacement worker reads what the one before it wrote, as on
    the local placement. World-writable: the workers run as the image's own non-root user."""
    path = run_dir.resolve() / "worker-files"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o1777)
    return path


def start_reaper(client: Any) -> str | None:
    """Start testcontainers' Ryuk reaper once per process, unless it is off; when its image
    cannot be had (no registry) switch it off and say so: label cleanup covers that case.

    Started here, before containers start in parallel, so two threads never race to create it.
    """
    import docker.errors
    from testcontainers.core.container import Reaper

    if testcontainers_config.ryuk_disabled:
        return None
    image = testcontainers_config.ryuk_image
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        try:
            client.images.pull(image)
        except docker.errors.APIError as error:
            testcontainers_config.ryuk_disabled = True
            reason = " ".join(str(error).split())[:120]
            return f"Ryuk reaper off: its image {image} cannot be pulled ({reason})"
    Reaper.get_instance()
    return None


def client_options() -> dict[str, Any]:
    """Keyword arguments for every testcontainers client (its own docker SDK client)."""
    return {"timeout": ENGINE_TIMEOUT}


class RunNetwork(Network):
    """A user-defined network named for the run and labelled, which containers can also leave."""

    def __init__(self, name: str, labels: dict[str, str]):
        super().__init__(docker_client_kw=client_options(), docker_network_kw={"labels": labels})
        self.name = name

    def disconnect(self, container_id: str) -> None:
        self._unwrap_network.disconnect(container_id)


class LoopbackRedis(RedisContainer):
    """A password-protected Redis published on 127.0.0.1 at a fixed host port."""

    def __init__(self, image: str, password: str, host_port: int, appendonly: bool):
        super().__init__(
            image, port=REDIS_PORT, password=password, docker_client_kw=client_options()
        )
        self.host_port = host_port
        self.persistence = "aof" if appendonly else "none"
        # testcontainers' with_bind_ports cannot name a host address; docker-py takes (ip, port).
        self.ports[str(REDIS_PORT)] = (LOOPBACK, host_port)  # type: ignore[assignment]
        self.with_command([
            "redis-server", "--requirepass", password, "--save", "",
            "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always",
            "--protected-mode", "no",
        ])  # fmt: skip
        self.ready = (
            PingWaitStrategy()
            .with_poll_interval(READY_POLL_SECONDS)
            .with_startup_timeout(REDIS_READY_SECONDS)
            .with_transient_exceptions(redis.TimeoutError)
        )
        self.waiting_for(self.ready)

    def url(self, host: str = LOOPBACK, port: int | None = None) -> str:
        """A Redis URL of database 0: from the host by default, or by container name."""
        return f"redis://:{self.password}@{host}:{port or self.host_port}/0"

    def broker(self, spec: BrokerSpec, host: str, log: Callable[[str], None]) -> RedisBroker:
        """This container as the scenario's broker; workers reach it as ``host`` (its name)."""
        return RedisBroker(spec, self.url(), self.url(host, REDIS_PORT), log=log)

    def get_client(self, **kwargs: Any) -> redis.Redis:
        """A client on the loopback port (no engine round trip, unlike testcontainers' own)."""
        options = {"socket_timeout": 5, "socket_connect_timeout": 2} | kwargs
        return redis.Redis(host=LOOPBACK, port=self.host_port, password=self.password, **options)

    def crash_and_restart(self, down_for: float = 0.0) -> None:
        """SIGKILL the server, start the same container again ``down_for`` s later, wait until
        it answers."""
        container = self.get_wrapped_container()
        crash(container, down_for)
        container.start()
        self.ready.wait_until_ready(self)

    def restart_detail(self) -> str:
        return f"broker container SIGKILLed and restarted (persistence: {self.persistence})"


def crash(container: Any, down_for: float) -> None:
    """SIGKILL a broker container, wait until the engine saw it exit, then ``down_for`` s more
    (the caller starts the same container again: its filesystem and published port stay)."""
    container.kill(signal="SIGKILL")
    container.wait(timeout=ENGINE_TIMEOUT)
    time.sleep(down_for)


def pause_unless_exited(container: Any, deadline: float = PAUSE_DEADLINE) -> None:
    """``docker pause`` a running container. A container in the middle of exiting (a warm
    shutdown ending just as the run freezes) can refuse: runc's "unable to freeze" (seen in
    CI). One that has exited by then needs no freeze; one still running is paused again until
    ``deadline`` s have passed, and the last refusal is raised."""
    end = time.monotonic() + deadline
    while True:
        container.reload()
        if container.status != "running":
            return
        try:
            container.pause()
            return
        except docker.errors.APIError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


class WorkerContainer(DockerContainer):
    """A container attached to all ``networks`` before it starts (the first one at create)."""

    def __init__(self, image: str, networks: list[RunNetwork]):
        super().__init__(image, docker_client_kw=client_options())
        self.with_network(networks[0])
        self._attaching = _AttachBeforeStart(super().get_docker_client(), networks[1:])

    def get_docker_client(self) -> DockerClient:
        return cast(DockerClient, self._attaching)


class _AttachBeforeStart:
    """A testcontainers client whose ``start`` first connects the container to more networks."""

    def __init__(self, client: DockerClient, networks: list[RunNetwork]):
        self._client = client
        self._networks = networks

    def start(self, container: Any) -> None:
        for network in self._networks:
            network.connect(container.id)
        self._client.start(container)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
