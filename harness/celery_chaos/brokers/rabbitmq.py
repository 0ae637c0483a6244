"""What every RabbitMQ broker the harness starts is told, whichever backend starts it (a local
node's files, a container's ``/etc/rabbitmq``), and how it is known to be ready.

- a random administrator created by the node itself at first boot (``default_user``), so the
  ``guest`` account never exists, not even for a moment;
- the scenario's ``broker.consumer_timeout``, with a channel tick short enough to apply it
  (RabbitMQ checks consumer timeouts on that tick, every 60 s by default);
- ready means an AMQP login with that user succeeds: the listener opens after queue recovery,
  so a login proves the node serves AMQP (no fixed sleep, no ``rabbitmqctl`` VM per poll).
"""

from __future__ import annotations

import amqp

DEFAULT_TICK_MS = 60_000
CONSUMER_TIMEOUT_TICK_MS = 500


def rabbitmq_conf(user: str, password: str, consumer_timeout: float | None) -> str:
    """The ``rabbitmq.conf`` (sysctl format) lines of a harness broker."""
    lines = [
        f"default_user = {user}",
        f"default_pass = {password}",
        "default_vhost = /",
        "default_user_tags.administrator = true",
        "default_permissions.configure = .*",
        "default_permissions.read = .*",
        "default_permissions.write = .*",
        "loopback_users = none",
    ]
    if consumer_timeout is not None:
        lines.append(f"consumer_timeout = {int(consumer_timeout * 1000)}")
    return "\n".join([*lines, ""])


def advanced_config(consumer_timeout: float | None) -> str:
    """The ``advanced.config`` (Erlang terms): the channel tick that enforces the timeout."""
    tick = CONSUMER_TIMEOUT_TICK_MS if consumer_timeout is not None else DEFAULT_TICK_MS
    return f"[{{rabbit, [{{channel_tick_interval, {tick}}}]}}].\n"


def connect(host: str, port: int, user: str, password: str, timeout: float = 5) -> amqp.Connection:
    """A connected py-amqp client (for inspection, readiness and tests)."""
    connection = amqp.Connection(
        f"{host}:{port}", userid=user, password=password, connect_timeout=timeout
    )
    connection.connect()
    return connection


def login_works(host: str, port: int, user: str, password: str) -> bool:
    """Whether an AMQP login succeeds now (the readiness probe)."""
    try:
        connect(host, port, user, password, timeout=2).close()
    except (OSError, amqp.exceptions.AMQPError):
        return False
    return True
