"""The app's own services on the docker placement (``services.postgres``, ``services.redis``) and
its ``run:`` setup steps.

Each service is a container on the run's ledger network (the network no fault cuts: a
``partition`` cuts a worker off its broker, not off its database, as on the local placement),
reached by the workers at its container name, published on 127.0.0.1 for the harness, labelled
with the run like every other container so ``cleanup`` finds it. A ``run:`` step runs in a
one-off container of the worker image (the app's environment, the workers' env and working
directory), so what it prepares is what the workers see.

The harness reads the PostgreSQL container with the host's ``psql``; a host without one uses the
container's own, through ``docker exec`` (:func:`exec_psql`, registered with services.postgres).
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
from pathlib import Path
from typing import Any

from testcontainers.core.container import DockerContainer

from celery_chaos.placements.base import Unsupported
from celery_chaos.placements.docker import images
from celery_chaos.placements.docker.containers import (
    LOOPBACK,
    REDIS_PORT,
    ROLE_LABEL,
    LoopbackRedis,
    RunNetwork,
    client_options,
)
from celery_chaos.placements.docker.steps import Log
from celery_chaos.placements.ports import free_port
from celery_chaos.placements.service_access import CommandResult, ServiceUrl
from celery_chaos.services import postgres

POSTGRES_READY_SECONDS = 60
READY_POLL_SECONDS = 0.1
# The workers' (and setup containers') working directory: the run's ``work`` folder, mounted.
WORK_MOUNT = "/var/lib/celery-chaos/work"
SERVER_SETTINGS = ("fsync=off", "full_page_writes=off")  # a throwaway cluster, as on local


def work_mount_source(work_dir: Path) -> str:
    """The run's ``work`` folder, world-writable (the worker image runs as a non-root user)."""
    path = work_dir.resolve()
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o1777)
    return str(path)


class LoopbackPostgres(DockerContainer):
    """A PostgreSQL container (the registry's ``postgres:15`` interface, which the offline image
    copies) with the run's user and database, published on 127.0.0.1 at a fixed port."""

    def __init__(self, image: str, host_port: int, database: str):
        super().__init__(image, docker_client_kw=client_options())
        self.host_port = host_port
        self.database = database
        self.ports[str(postgres.PORT)] = (LOOPBACK, host_port)  # type: ignore[assignment]
        self.with_env("POSTGRES_USER", postgres.USER).with_env(
            "POSTGRES_PASSWORD", postgres.PASSWORD
        )
        self.with_env("POSTGRES_DB", database)
        self.with_command(["postgres", *(f"-c{setting}" for setting in SERVER_SETTINGS)])

    def url(self, host: str = LOOPBACK, port: int | None = None) -> str:
        return postgres.url(host, port or self.host_port, self.database)

    def wait_ready(self) -> None:
        """Until ``psql`` logs in to the database over the published port (the image's first
        start initialises with no TCP listener, so this is the real server), or it exits."""
        deadline, problem = time.monotonic() + POSTGRES_READY_SECONDS, ""
        container = self.get_wrapped_container()
        while time.monotonic() < deadline:
            container.reload()
            if container.status in ("exited", "dead"):
                logs = container.logs().decode(errors="replace")
                raise RuntimeError(f"exited: {postgres.tail(logs, 4)}")
            try:
                postgres.psql(self.url(), "SELECT 1", timeout=10)
                return
            except postgres.PostgresError as error:
                problem = str(error)
            time.sleep(READY_POLL_SECONDS)
        raise RuntimeError(f"not ready after {POSTGRES_READY_SECONDS}s: {problem}")


class DockerServices:
    """Starts the containers a scenario's ``services`` asks for, and runs setup containers."""

    def __init__(self, run_id: str, labels: dict[str, str]):
        self.run_id = run_id
        self.labels = labels
        self.containers: dict[str, Any] = {}  # "postgres" | "app-redis" -> container
        self._steps = itertools.count(1)

    def start(
        self, wanted: dict[str, Any], network: RunNetwork, redis_image: str, log: Log
    ) -> dict[str, ServiceUrl]:
        """Start each service (``postgres`` first); one that cannot start is
        :class:`Unsupported` (the run is not runnable) with the reason."""
        urls = {}
        for name, spec in wanted.items():
            role = "postgres" if name == "postgres" else "app-redis"
            host = f"chaos-{self.run_id}-{role}"
            container: LoopbackPostgres | LoopbackRedis
            if name == "postgres":
                image = spec.image or images.DEFAULT_POSTGRES_IMAGE
                container = LoopbackPostgres(image, free_port(), spec.database)
            else:
                image = spec.image or redis_image
                container = LoopbackRedis(image, secrets.token_hex(16), free_port(), False)
            container.with_name(host).with_network(network)
            container.with_kwargs(labels=self.labels | {ROLE_LABEL: role})
            self.containers[role] = container
            began = time.monotonic()
            try:
                container.start()
                if isinstance(container, LoopbackPostgres):
                    runner = exec_psql(container.get_wrapped_container().id)
                    postgres.register_container_psql(container.url(), runner)
                    container.wait_ready()
            except Exception as error:
                detail = " ".join(str(error).split())[:400]
                raise Unsupported(
                    f"services.{name}: container {image} did not start: {detail}"
                ) from None
            log(f"   services.{name}: ready in {time.monotonic() - began:.2f}s ({image})")
            inner = postgres.PORT if name == "postgres" else REDIS_PORT
            urls[name] = ServiceUrl(container.url(), container.url(host, inner))
        return urls

    def run_command(
        self, client: Any, image: str, command: str, env: dict[str, str], timeout: float,
        volumes: dict[str, dict[str, str]], networks: list[str], logs_dir: Path,
    ) -> CommandResult:  # fmt: skip
        """Run a ``run:`` step in a one-off container of the worker image on the run's
        networks, in the workers' working directory; removed afterwards, its output kept in
        ``logs/setup-<n>.log``."""
        number = next(self._steps)
        container = client.containers.create(
            image, ["/bin/sh", "-c", command], environment=env, working_dir=WORK_MOUNT,
            volumes=volumes, network=networks[0], name=f"chaos-{self.run_id}-setup-{number}",
            labels=self.labels | {ROLE_LABEL: "setup"},
        )  # fmt: skip
        try:
            for name in networks[1:]:
                client.networks.get(name).connect(container)
            container.start()
            exitcode: int | None = _wait(container, timeout)
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        (logs_dir / f"setup-{number}.log").write_text(output)
        return CommandResult(exitcode, output)

    def close(self) -> None:
        for container in self.containers.values():
            if isinstance(container, LoopbackPostgres):
                postgres.unregister_container_psql(container.url())
        self.containers.clear()


def exec_psql(container_id: str) -> postgres.ContainerPsql:
    """Run the container's own ``psql`` (``docker exec``): the SQL on its stdin, as the host's
    would get it, stopped by ``timeout`` inside the container (exit 124 -> None)."""
    client = images.docker_client(timeout=int(postgres.PSQL_TIMEOUT) + 30)
    script = 'printf "%s" "$CHAOS_SQL" | timeout "$CHAOS_TIMEOUT" psql "$@"'

    def run(args: list[str], sql: str, timeout: float) -> tuple[int | None, str, str]:
        env = {"CHAOS_SQL": sql, "CHAOS_TIMEOUT": str(max(1, math.ceil(timeout)))}
        try:
            done = client.containers.get(container_id).exec_run(
                ["sh", "-c", script, "psql", *args],
                environment=env | {"PGCONNECT_TIMEOUT": "5"},
                demux=True,
            )
        except Exception as error:  # the engine's error (container gone...): psql's "output"
            return 2, "", f"docker exec psql: {type(error).__name__}: {error}"
        out, err = done.output or (None, None)
        code = None if done.exit_code == 124 else done.exit_code
        return code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")

    return run


def _wait(container: Any, timeout: float) -> int | None:
    """The container's exit code, or None (and it is killed) after ``timeout`` s."""
    import requests

    try:
        return int(container.wait(timeout=timeout)["StatusCode"])
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        container.kill()
        return None
