"""The agent's own Redis client: RESP over one socket, and nothing but the standard library.

Why: the agent runs inside the app's workers, on the app's interpreter and packages (``--python``),
and must need nothing the app lacks; an app on RabbitMQ has no redis-py. The agent speaks only a
handful of commands to the ledger (RPUSH, EVAL, SISMEMBER, BLPOP, SET, GET, PING), so a client
of its own is a few dozen lines. The fire-and-forget writer (``ledger_wire``) shares its wire
format; this is the synchronous side: every call waits for its reply.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

CONNECT_TIMEOUT_SECONDS = 5.0


class ReplyError(RuntimeError):
    """The ledger answered a command with an error."""


def command(*args: Any) -> bytes:
    """One Redis command in RESP, ready to send."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_reply(reader: BinaryIO) -> Any:
    """One reply: an int, bytes, None, a list, a status string, or a :class:`ReplyError` (returned,
    not raised, so a caller reading several replies stays in step with the connection)."""
    line = reader.readline()
    if not line:
        raise ConnectionError("ledger closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"-":
        return ReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else reader.read(size + 2)[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [read_reply(reader) for _ in range(size)]
    return rest.decode()


def open_socket(url: str, timeout: float, name: str) -> tuple[socket.socket, BinaryIO]:
    """A connection to the Redis at ``url`` (``redis://[:password@]host:port/db``), authenticated,
    on its database and named ``name`` (the run's barrier finds the agent's by name)."""
    parts = urlparse(url)
    address = (parts.hostname or "localhost", parts.port or 6379)
    sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_SECONDS)
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb")
    hello = [command("CLIENT", "SETNAME", name)]
    db = int(parts.path.strip("/") or 0)
    if db:
        hello.insert(0, command("SELECT", db))
    if parts.password:
        hello.insert(0, command("AUTH", unquote(parts.password)))
    sock.sendall(b"".join(hello))
    errors = [r for r in [read_reply(reader) for _ in hello] if isinstance(r, ReplyError)]
    if errors:  # e.g. a wrong password: never go on unseen
        reader.close()
        sock.close()
        raise errors[0]
    return sock, reader


class Connection:
    """A synchronous connection: each call sends, then waits for the answer. A thread pool's
    threads share it, one exchange at a time."""

    def __init__(self, url: str, timeout: float = 10.0, name: str | None = None) -> None:
        self.timeout = timeout
        # not the fire-and-forget writers' prefix: the run's barrier waits for those only
        name = name or f"chaos-sync-{os.getpid()}"
        self.sock, self.reader = open_socket(url, timeout, name)
        self.lock = threading.Lock()

    def execute_command(self, *args: Any) -> Any:
        """One command, one round trip; its reply (an error reply is raised)."""
        return self.pipeline(args)[0]

    def pipeline(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Several commands in one round trip; their replies in order."""
        with self.lock:
            self.sock.sendall(b"".join(command(*args) for args in commands))
            replies = [read_reply(self.reader) for _ in commands]
        errors = [reply for reply in replies if isinstance(reply, ReplyError)]
        if errors:  # raised only once every reply is read: the connection stays in step
            raise errors[0]
        return replies

    def blpop(self, key: str, seconds: float) -> Any:
        """BLPOP ``key`` for ``seconds`` (the socket may wait that long, plus a margin)."""
        with self.lock:
            self.sock.settimeout(seconds + self.timeout)
            try:
                self.sock.sendall(command("BLPOP", key, f"{seconds:.3f}"))
                reply = read_reply(self.reader)
            finally:
                self.sock.settimeout(self.timeout)
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def close(self) -> None:
        self.reader.close()  # the socket closes only once its file object is closed too
        self.sock.close()


class StoreClient(Connection):
    """What :func:`celery_chaos.store` returns where redis-py is not installed: any command as a
    method (``client.hincrby(key, field, 1)`` sends ``HINCRBY key field 1``), replies as bytes
    like redis-py's; ``set(..., nx=True)`` and ``hset(key, mapping=...)`` as redis-py takes them."""

    def set(self, key: str, value: Any, nx: bool = False, ex: int | None = None) -> bool:
        extra = (["EX", ex] if ex else []) + (["NX"] if nx else [])
        return self.execute_command("SET", key, value, *extra) is not None

    def hset(self, key: str, field: Any = None, value: Any = None, mapping: Any = None) -> int:
        pairs = ([field, value] if field is not None else []) + [
            item for pair in (mapping or {}).items() for item in pair
        ]
        return int(self.execute_command("HSET", key, *pairs))

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.execute_command(name.upper(), *args)
