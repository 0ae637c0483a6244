"""A RabbitMQ broker container for the docker placement: what the local placement's private node is,
as a testcontainers container, and inspected through the same ``RabbitMQAccess`` protocol.

- published on 127.0.0.1 at a host port fixed at creation, so a restart keeps it;
- a random administrator user (no ``guest``) and the scenario's ``consumer_timeout``: the same
  config lines as the local node (:mod:`celery_chaos.brokers.rabbitmq`), copied into
  ``/etc/rabbitmq/conf.d`` and ``/etc/rabbitmq/advanced.config`` before the first start (the
  layout of both the offline Debian image and the registry's ``rabbitmq:3``);
- ready when an AMQP login succeeds, polled from the host (no fixed sleep);
- ``rabbitmqctl`` (and ``erl_call`` where the image has it) through ``docker exec`` as user
  ``rabbitmq`` (its HOME holds the cookie the server wrote); a crash is SIGKILL + start of the
  same container, whose filesystem (mnesia: durable queues, persistent messages) and hostname
  (the node name) survive.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import amqp
import docker.errors
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from celery_chaos.brokers.rabbitmq import (
    RabbitMQBroker,
    advanced_config,
    connect,
    login_works,
    rabbitmq_conf,
)
from celery_chaos.brokers.rabbitmq_inspection import ctl_failure
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.docker.containers import LOOPBACK, client_options, crash

AMQP_PORT = 5672
RABBITMQ_READY_SECONDS = 120  # ready in ~4 s idle, 5-8 s on a loaded 2-core runner
READY_POLL_SECONDS = 0.1
CTL_TIMEOUT_SECONDS = 60
CTL_USER = "rabbitmq"
# After the image's own conf.d files (the registry image ships 10-defaults.conf): ours win.
CONF_PATH = "/etc/rabbitmq/conf.d/90-celery-chaos.conf"
ADVANCED_CONFIG_PATH = "/etc/rabbitmq/advanced.config"
# erl_call on PATH (Debian) or in the Erlang tree of the registry image; the node is the image's
# default ``rabbit@<hostname>``; the expression comes as $1 (erl_call -e reads stdin).
ERL_CALL = (
    "e=$(command -v erl_call || ls /usr/local/lib/erlang/lib/erl_interface-*/bin/erl_call"
    ' 2>/dev/null | tail -n 1); [ -n "$e" ] || exit 127;'
    ' printf "%s\\n" "$1" | "$e" -sname rabbit -fetch_stdout -e'
)


class RabbitMQCtlError(RuntimeError):
    """``rabbitmqctl`` failed or the container does not run (inspection reads RuntimeError)."""


class AmqpLoginWaitStrategy(WaitStrategy):
    """Ready when the broker user can log in over AMQP; fails at once if the container exits."""

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        target: LoopbackRabbitMQ = container  # type: ignore[assignment]
        if not self._poll(target.login_or_raise):
            tail = target.log_tail()
            raise TimeoutError(
                f"RabbitMQ did not accept a login within {self._startup_timeout:g}s: {tail}"
            )


class LoopbackRabbitMQ(DockerContainer):
    """A RabbitMQ node with a random administrator, published on 127.0.0.1 at a fixed port."""

    vhost = "/"  # a container is one scenario's node: its clients use the default vhost

    def __init__(self, image: str, host_port: int, consumer_timeout: float | None = None):
        super().__init__(image, docker_client_kw=client_options())
        self.user = f"chaos-{secrets.token_hex(4)}"
        self.password = secrets.token_hex(16)
        self.host_port = host_port
        # testcontainers' with_bind_ports cannot name a host address; docker-py takes (ip, port).
        self.ports[str(AMQP_PORT)] = (LOOPBACK, host_port)  # type: ignore[assignment]
        conf = rabbitmq_conf(self.user, self.password, consumer_timeout)
        # World-readable inside the container only (root-owned; the server runs as rabbitmq).
        self.with_copy_into_container(conf.encode(), CONF_PATH, 0o644)
        advanced = advanced_config(consumer_timeout)
        self.with_copy_into_container(advanced.encode(), ADVANCED_CONFIG_PATH, 0o644)
        self.ready = (
            AmqpLoginWaitStrategy()
            .with_poll_interval(READY_POLL_SECONDS)
            .with_startup_timeout(RABBITMQ_READY_SECONDS)
        )
        self.waiting_for(self.ready)
        self.startup_seconds: float | None = None
        self.erl_missing = False  # the image has no erl_call: rabbitmqctl answers everything

    # --- URLs and clients --------------------------------------------------------------
    def url(self, host: str = LOOPBACK, port: int | None = None) -> str:
        """An AMQP URL for the default vhost: from the host by default, or by container name."""
        return f"amqp://{self.user}:{self.password}@{host}:{port or self.host_port}//"

    def broker(self, spec: BrokerSpec, host: str, log: Callable[[str], None]) -> RabbitMQBroker:
        """This container as the scenario's broker; workers reach it as ``host`` (its name)."""
        return RabbitMQBroker(spec, self, self.url(), self.url(host, AMQP_PORT), log=log)

    def connection(self) -> amqp.Connection:
        """A connected py-amqp client on the loopback port (for inspection and tests)."""
        return connect(LOOPBACK, self.host_port, self.user, self.password)

    def login_or_raise(self) -> bool:
        """One readiness poll: a login works; an exited container is an error, not a wait."""
        if login_works(LOOPBACK, self.host_port, self.user, self.password):
            return True
        container = self.get_wrapped_container()
        container.reload()
        if container.status in ("exited", "dead"):
            raise RabbitMQCtlError(f"RabbitMQ container exited: {self.log_tail()}")
        return False

    def log_tail(self, lines: int = 5) -> str:
        try:
            output = self.get_wrapped_container().logs(tail=lines)
        except docker.errors.APIError:
            return "(no log)"
        return " | ".join(output.decode(errors="replace").split("\n")).strip()[-600:]

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> LoopbackRabbitMQ:
        began = time.monotonic()
        super().start()
        self.startup_seconds = time.monotonic() - began
        return self

    def crash_and_restart(self, down_for: float = 0.0) -> None:
        """SIGKILL the node, start the same container again ``down_for`` s later, wait until a
        login works."""
        container = self.get_wrapped_container()
        crash(container, down_for)
        began = time.monotonic()
        container.start()
        self.ready.wait_until_ready(self)
        self.startup_seconds = time.monotonic() - began

    def restart_detail(self) -> str:
        took = self.startup_seconds or 0.0
        return (
            "RabbitMQ container SIGKILLed and restarted (its filesystem, mnesia, kept;"
            f" up again in {took:.1f}s)"
        )

    # --- rabbitmqctl -------------------------------------------------------------------
    def _exec(self, what: str, *command: str) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of ``command`` run in the container as user rabbitmq,
        under ``timeout``; ``what`` names it in the error if the engine refuses."""
        argv = ["timeout", str(CTL_TIMEOUT_SECONDS), *command]
        try:
            result = self.get_wrapped_container().exec_run(argv, user=CTL_USER, demux=True)
        except docker.errors.APIError as error:
            raise RabbitMQCtlError(f"{what}: {error.explanation}") from None
        stdout, stderr = (part.decode(errors="replace") if part else "" for part in result.output)
        return result.exit_code, stdout, stderr

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl -q`` in the container as user rabbitmq; its stdout."""
        code, stdout, stderr = self._exec(f"rabbitmqctl {args[0]}", "rabbitmqctl", "-q", *args)
        if code != 0:
            raise RabbitMQCtlError(ctl_failure(args, stdout, stderr))
        return stdout

    def erl(self, expression: str) -> str:
        """Evaluate Erlang ``expression`` in the node through the image's ``erl_call`` (as user
        rabbitmq, whose HOME holds the cookie): no CLI VM to boot (:mod:`~celery_chaos.brokers.
        rabbitmq_erl`). An image without ``erl_call`` is asked once."""
        if self.erl_missing:
            raise RabbitMQCtlError("no erl_call in the image")
        code, stdout, stderr = self._exec("erl_call", "sh", "-c", ERL_CALL, "sh", expression)
        self.erl_missing = code == 127
        if code != 0:
            raise RabbitMQCtlError(f"erl_call failed: {(stderr or stdout)[:200]}")
        return stdout
