"""The docker placement: broker, ledger and workers as containers, through testcontainers-python.

Layout of one run, every object labelled ``celery-chaos.run=<id>`` so :func:`cleanup` can find
it after a crash (Testcontainers' Ryuk reaper also removes it where its image can be pulled):

- network ``chaos-<id>-broker``: broker (Redis or RabbitMQ, :mod:`.rabbitmq`) + workers
  (``partition`` cuts a worker off this one);
- network ``chaos-<id>-ledger``: ledger (Redis) + workers (never cut: the observer stays
  connected);
- ports published on 127.0.0.1 only, at a port fixed when the container is created so a broker
  restart keeps it; unprivileged worker containers, no Docker socket inside.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import redis
from testcontainers.core.container import DockerContainer

from celery_chaos.agent import instrument as agent
from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.faults.base import DOCKER
from celery_chaos.faults.params import parse_size
from celery_chaos.faults.registry import supported_by
from celery_chaos.ledger import Ledger
from celery_chaos.placements.base import (
    BackendError,
    Placement,
    Unsupported,
    Worker,
)
from celery_chaos.placements.docker import images, network, probes, rabbitmq_shared
from celery_chaos.placements.docker.app_services import (
    WORK_MOUNT,
    DockerServices,
    work_mount_source,
)
from celery_chaos.placements.docker.containers import (
    REDIS_PORT,
    ROLE_LABEL,
    RUN_LABEL,
    WORKER_FILES_MOUNT,
    LoopbackRedis,
    RunNetwork,
    WorkerContainer,
    cleanup,
    docker_client,
    pause_unless_exited,
    run_files_dir,
    start_reaper,
)
from celery_chaos.placements.docker.rabbitmq import LoopbackRabbitMQ
from celery_chaos.placements.docker.sentinel import SentinelContainers
from celery_chaos.placements.docker.watch import ContainerWatch, engine
from celery_chaos.placements.ports import free_port
from celery_chaos.placements.service_access import CommandResult
from celery_chaos.placements.sharing import can_share
from celery_chaos.placements.worker_command import entrypoint_command

__all__ = ["RUN_LABEL", "DockerPlacement", "cleanup", "docker_client"]

ROLES = ("broker", "ledger")
# Which container runs which broker kind (its default image: images.DEFAULT_BROKER_IMAGES): the
# one table the docker placement reads (a new broker kind adds a container class and a row).
BROKER_CONTAINERS: dict[str, Callable[[str, BrokerSpec], LoopbackRedis | LoopbackRabbitMQ]] = {
    "redis": lambda image, spec: LoopbackRedis(
        image, secrets.token_hex(16), free_port(), spec.persistence == "aof"
    ),
    "rabbitmq": lambda image, spec: LoopbackRabbitMQ(image, free_port(), spec.consumer_timeout),
}
# broker.topology other than single: the containers that make it (docker/sentinel.py).
TOPOLOGY_CONTAINERS: dict[str, Callable[[str, BrokerSpec], SentinelContainers]] = {
    "sentinel": lambda image, spec: SentinelContainers(
        image, spec, secrets.token_hex(16), secrets.token_hex(16)
    ),
}
PARALLEL_CALLS = 4
UNLIMITED_MEMORY = 64 * 1024**3
AGENT_MOUNT_POINT = "/opt/celery-chaos-agent"


class DockerPlacement(ContainerWatch, Placement):
    name = "docker"
    supported_faults = supported_by(DOCKER)
    oom_poll_interval = 0.05

    def __init__(
        self,
        scenario: Scenario,
        run_dir: Path,
        log: Callable[[str], None] = print,
        worker_image: str | None = None,
        redis_image: str | None = None,
        mount_agent: bool = True,
        shared_rabbitmq: rabbitmq_shared.SharedRabbitMQContainers | None = None,
    ):
        super().__init__(scenario, run_dir, log)
        # a vhost of the suite's RabbitMQ container where nothing reaches beyond it (sharing.py)
        self.shared = shared_rabbitmq if shared_rabbitmq and can_share(scenario) else None
        self.worker_image = worker_image or scenario.workers.image or images.DEFAULT_WORKER_IMAGE
        # broker.image names the broker's image, whichever its kind; the ledger is always Redis,
        # and a Redis broker runs the ledger's image.
        own = {scenario.broker.kind: scenario.broker.image}
        self.redis_image = redis_image or own.get("redis") or images.DEFAULT_REDIS_IMAGE
        defaults = images.DEFAULT_BROKER_IMAGES
        by_kind = {kind: own.get(kind) or image for kind, image in defaults.items()}
        self.broker_image = (by_kind | {"redis": self.redis_image})[scenario.broker.kind]
        self.mount_agent = mount_agent
        self.labels = {RUN_LABEL: self.run_id}
        self.client: Any = None
        self.networks: dict[str, RunNetwork] = {}
        self.services: dict[str, Any] = {}  # role -> LoopbackRedis | LoopbackRabbitMQ
        self.worker_argv: dict[str, list[str]] = {}  # worker name -> the container's command
        self.proxies = network.BrokerProxies()  # drop_connections/latency (network.py)
        self.app_services = DockerServices(self.run_id, self.labels)  # services, setup steps

    def check_runnable(self) -> None:
        super().check_runnable()
        if self.scenario.broker.topology != "single" and network.needs_proxy(self.scenario):
            raise Unsupported(
                "broker.topology sentinel: network faults need one broker address to proxy"
            )
        ok, reason = images.engine_available()
        if not ok:
            raise BackendError(f"--backend docker: {reason}")
        self.client = docker_client()
        roles = {self.worker_image: "worker", self.redis_image: "Redis"}
        roles[self.broker_image] = f"{self.scenario.broker.kind} broker"
        wanted = self.wanted_services()
        if "postgres" in wanted:
            roles[wanted["postgres"].image or images.DEFAULT_POSTGRES_IMAGE] = "PostgreSQL"
        for image, role in roles.items():
            if not images.have_image(self.client, image):
                raise BackendError(
                    f"--backend docker: the {role} image {image} is not available (build it"
                    " with `celery-chaos images build --offline`, or choose another with"
                    " --worker-image/--redis-image or the scenario's broker.image)"
                )

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self.client = self.client or docker_client()
        note = start_reaper(self.client)
        if note:
            self.log(note)
        for role in ROLES:
            self.networks[role] = RunNetwork(f"chaos-{self.run_id}-{role}", self.labels)
        _in_parallel(net.create for net in self.networks.values())
        self._start_services()
        host = f"chaos-{self.run_id}-broker"  # its name on the run's broker network
        self.broker = self.services["broker"].broker(self.scenario.broker, host, self.log)
        self.broker.declare_queues()
        broker_network = self.networks["broker"].name
        self.proxies.prepare(self.scenario, self.client, broker_network, self._broker_host_port())
        self.ledger = Ledger(self.services["ledger"].get_client())
        self.service_urls = self.app_services.start(
            self.wanted_services(), self.networks["ledger"], self.redis_image, self.log
        )
        self._run_setup()
        names = [self._spawn_worker().name for _ in range(self.scenario.workers.count)]
        if names:
            self.wait_ready(names)
        self.broker.settle()

    def _start_services(self) -> None:
        """Ledger and broker, started side by side (each waits until it answers: a Redis
        PING, a RabbitMQ login)."""
        self.services["ledger"] = LoopbackRedis(
            self.redis_image, secrets.token_hex(16), free_port(), appendonly=False
        )
        topology = self.scenario.broker.topology
        make_container: Callable[[str, BrokerSpec], Any] = TOPOLOGY_CONTAINERS.get(
            topology, BROKER_CONTAINERS[self.scenario.broker.kind]
        )
        if self.shared is None:
            self.services["broker"] = make_container(self.broker_image, self.scenario.broker)
        else:  # a vhost of the suite's container, which joins the run's broker network
            network = self.networks["broker"]
            self.services["broker"] = self.shared.lease(self.run_id, self.broker_image, network)
        for role, service in self._own_services().items():
            service.with_name(f"chaos-{self.run_id}-{role}").with_network(
                self.networks[role]
            ).with_kwargs(labels=self.labels | {ROLE_LABEL: role})
        try:
            _in_parallel(service.start for service in self.services.values())
        except Exception as error:
            used = ", ".join(sorted({self.redis_image, self.broker_image}))
            raise BackendError(
                f"broker/ledger container ({used}) did not start: {error}"
            ) from error

    def _own_services(self) -> dict[str, Any]:
        """The run's own service containers (not a vhost of a shared container)."""
        lease = rabbitmq_shared.ContainerVhost
        return {role: s for role, s in self.services.items() if not isinstance(s, lease)}

    def close(self) -> None:
        if self.client is None:
            return
        containers = [w.handle for w in self.workers] + list(self.services.values())
        containers += list(self.app_services.containers.values())
        self._save_logs()
        try:
            _in_parallel(partial(_quietly, container.stop) for container in containers)
            _in_parallel(partial(_quietly, net.remove) for net in self.networks.values())
            cleanup(self.run_id, self.client)  # whatever the steps above could not remove
        finally:
            self.proxies.close()  # no listener outlives the run
            self.app_services.close()  # the psql fallback forgets this run's PostgreSQL

    def _save_logs(self) -> None:
        containers = {f"worker-w{w.index}": w.handle for w in self.workers} | self.services
        containers |= self.app_services.containers
        for name, container in containers.items():
            try:
                logs = container.get_wrapped_container().logs()
            except Exception:  # a log we cannot read must not stop the cleanup
                continue
            (self.logs_dir / f"{name}.log").write_bytes(logs)

    def _ledger_url(self) -> str:
        """The URL workers reach the ledger at: its container's name on the ledger network."""
        return self.services["ledger"].url(f"chaos-{self.run_id}-ledger", REDIS_PORT)

    def _broker_host_port(self) -> int:
        """The broker's port published on the host's loopback (the proxies' upstream)."""
        return self.services["broker"].host_port

    # --- workers ---------------------------------------------------------------------
    def _launch_worker(self, index: int, name: str, arguments: list[str]) -> Worker:
        broker_url = self.proxies.open(index, self.broker.worker_url)  # or direct
        env = self.agent_env(self._ledger_url(), broker_url)
        # the image's entrypoint, if any, runs it (workers.entrypoint: under /bin/sh)
        command = entrypoint_command(["celery", *arguments], self.scenario.workers.entrypoint)
        self.worker_argv[name] = command
        container = (
            WorkerContainer(self.worker_image, [self.networks["broker"], self.networks["ledger"]])
            .with_command(self.worker_argv[name])
            .with_name(f"chaos-{self.run_id}-w{index}")
            .with_volume_mapping(str(run_files_dir(self.run_dir)), WORKER_FILES_MOUNT, "rw")
            .with_volume_mapping(work_mount_source(self.work_dir), WORK_MOUNT, "rw")
        )
        self._mount_agent(container, env)
        container.with_envs(**self._app_on_path(env)).with_kwargs(
            labels=self.labels | {ROLE_LABEL: "worker"},
            working_dir=WORK_MOUNT,  # the image's own working dir stays first on PYTHONPATH
            **self._memory_limit_options(),
        )
        worker = Worker(index=index, name=name, handle=container)
        container.start()
        self.proxies.probe(container.get_wrapped_container(), index)
        return worker

    def _app_on_path(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the image's working directory (where an app image keeps its code)
        first on PYTHONPATH, since the workers run in the run's ``work`` folder instead."""
        config = self.client.images.get(self.worker_image).attrs["Config"]
        image_path = next(
            (e.split("=", 1)[1] for e in config.get("Env") or [] if e.startswith("PYTHONPATH=")),
            "",
        )
        paths = [config.get("WorkingDir") or "", env.get("PYTHONPATH") or image_path]
        return env | {"PYTHONPATH": ":".join(filter(None, paths))}

    def run_setup_command(self, command: str, timeout: float) -> CommandResult:
        env = self._app_on_path(self.agent_env(self._ledger_url(), self.broker.worker_url))
        volumes = {work_mount_source(self.work_dir): {"bind": WORK_MOUNT, "mode": "rw"}}
        volumes[str(run_files_dir(self.run_dir))] = {"bind": WORKER_FILES_MOUNT, "mode": "rw"}
        names = [self.networks["ledger"].name, self.networks["broker"].name]
        return self.app_services.run_command(
            self.client, self.worker_image, command, env, timeout, volumes, names, self.logs_dir
        )

    def worker_files_dir(self) -> str:
        return WORKER_FILES_MOUNT  # every worker container of the run, replacements included

    def _worker_location(self, worker: Worker) -> dict[str, Any]:
        return {"container": engine(worker).name, "argv": self.worker_argv.get(worker.name)}

    def _memory_limit_options(self) -> dict[str, int]:
        limit = self.scenario.workers.memory_limit
        if not limit:
            return {}
        return {"mem_limit": parse_size(limit), "memswap_limit": parse_size(limit)}

    def _mount_agent(self, container: DockerContainer, env: dict[str, str]) -> None:
        """For a user's own image, mount this host's agent read-only instead of requiring a
        rebuild: the image only needs celery and redis, which every Redis-backed app has."""
        if not self.mount_agent or self.worker_image == images.DEFAULT_WORKER_IMAGE:
            return
        image_env = self.client.images.get(self.worker_image).attrs["Config"].get("Env") or []
        existing = next((e.split("=", 1)[1] for e in image_env if e.startswith("PYTHONPATH=")), "")
        env["PYTHONPATH"] = ":".join(filter(None, [AGENT_MOUNT_POINT, existing]))
        source = Path(agent.__file__).resolve().parents[1]  # the celery_chaos package
        container.with_volume_mapping(source, f"{AGENT_MOUNT_POINT}/celery_chaos", "ro")

    # --- faults ----------------------------------------------------------------------
    def kill_pool_process(self, worker: Worker, pid: int) -> str:
        container = engine(worker)
        result = container.exec_run(["kill", "-9", str(pid)])
        if result.exit_code != 0:
            return f"kill -9 {pid} in {container.name} failed: {result.output.decode().strip()}"
        self._pids.pop(worker.name, None)
        return f"SIGKILL pid {pid} inside container {container.name}"

    def kill_worker(self, worker: Worker) -> str:
        container = engine(worker)
        container.kill(signal="SIGKILL")
        container.wait(timeout=30)
        return f"docker kill (SIGKILL) {container.name}"

    def signal_worker(self, worker: Worker, signame: str) -> str:
        engine(worker).kill(signal=signame)
        return f"{signame} to container {engine(worker).name}"

    def pause_worker(self, worker: Worker, paused: bool) -> str:
        container = engine(worker)
        (container.pause if paused else container.unpause)()
        return f"docker {'pause' if paused else 'unpause'} {container.name}"

    def _crash_and_restart_broker(self, down_for: float) -> str:
        broker = self.services["broker"]
        try:
            broker.crash_and_restart(down_for)
        except (redis.RedisError, RuntimeError, TimeoutError) as error:
            raise BackendError(f"broker container did not come back: {error}") from None
        return broker.restart_detail()

    def close_broker_connection(self, worker: Worker) -> str:
        """Have RabbitMQ close the connections whose peer is the worker container's address on
        the broker network, as it does on a policy or an operator's command."""
        broker, container = self._closing_broker(), engine(worker)
        if worker.index in self.proxies.proxies:  # the broker sees the proxy, not the worker
            raise Unsupported(f"close_connection: {container.name} reaches the broker via a proxy")
        address = probes.address_on(container, self.networks["broker"].name)
        if not address:
            return f"{container.name} is not on the broker network: no connection to close"
        pids = broker.close_connections("peer_host", {address}, "celery-chaos close_connection")
        return f"RabbitMQ closed {len(pids)} connection(s) of {container.name} (peer {address})"

    def partition(self, worker: Worker, connected: bool, duration: float | None = None) -> str:
        broker_network, container = self.networks["broker"], engine(worker)
        self.proxies.cut(worker, connected)  # a proxied worker's proxy too (network.py)
        if connected:  # after partition_one_way the container never left the network
            if not probes.address_on(container, broker_network.name):
                broker_network.connect(container.id)
            return f"{container.name} reconnected to the broker network"
        broker_network.disconnect(container.id)
        if duration:  # a partition that heals itself (storms, faults[].duration)
            heal = partial(self.partition, worker, True)  # quietly: the run may be over
            threading.Timer(duration, _quietly, (heal,)).start()
        return f"{container.name} disconnected from the broker network (ledger still reachable)"

    def hold_one_way(self, worker: Worker, direction: str, duration: float | None) -> str:
        return self.proxies.proxy(worker).partition(duration, direction)

    def failover(self, how: str) -> str:
        failover = getattr(self.services.get("broker"), "failover", None)
        if failover is None:  # the scenario schema refuses it first: a single server
            raise Unsupported("failover: needs broker.topology sentinel")
        try:
            return str(failover(how))
        except redis.RedisError as error:
            raise BackendError(f"failover: the Sentinels did not answer: {error}") from None

    def drop_connections(self, worker: Worker) -> str:
        return self.proxies.proxy(worker).drop_connections()

    def add_latency(self, worker: Worker, seconds: float, duration: float | None) -> str:
        return self.proxies.proxy(worker).add_latency(seconds, duration)

    def limit_bandwidth(self, worker: Worker, rate: int, duration: float | None) -> str:
        return self.proxies.proxy(worker).limit_bandwidth(rate, duration)

    def network_holds_data(self) -> bool:
        return self.proxies.holds_data()

    def memory_usage(self, worker: Worker) -> int:
        return probes.memory_usage(engine(worker))

    def set_memory_limit(self, worker: Worker, limit: int | None) -> None:
        limit = UNLIMITED_MEMORY if limit is None else limit
        engine(worker).update(mem_limit=limit, memswap_limit=limit)

    def oom_witness(self, worker: Worker) -> str:
        return f"engine reported an OOM kill in {engine(worker).name}"

    def oom_kills(self, worker: Worker | None) -> int:
        """OOM events the engine reported for the worker's container since it started."""
        return 0 if worker is None else probes.oom_events(self.client, engine(worker))

    def freeze(self) -> None:
        for container in map(engine, self.workers):
            pause_unless_exited(container)


def _in_parallel(calls: Iterable[Callable[[], object]]) -> None:
    """Run engine calls side by side (each mostly waits for the engine); re-raise the first
    failure once all have finished."""
    with ThreadPoolExecutor(PARALLEL_CALLS) as pool:
        futures = [pool.submit(call) for call in calls]
    for future in futures:
        future.result()


def _quietly(call: Callable[[], object]) -> None:
    """A removal step whose failure must not stop the others: the label sweep retries it."""
    try:
        call()
    except Exception:
        return
