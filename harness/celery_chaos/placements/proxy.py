"""The harness's own TCP proxy: network faults on the local placement without Docker or root.

Each worker reaches the broker through its own listening port on 127.0.0.1 (its
``CHAOS_BROKER_URL`` points there); the ledger is never behind a proxy. The nemesis can then:

- ``partition`` / ``heal``: the worker's connections hang (a blackhole: bytes are held, not
  forwarded, and new connections are accepted but never reach the broker) until healed, when the
  held bytes flow on, as TCP retransmission delivers them after a short real partition; with a
  ``direction`` (``to_worker``, ``to_broker``) only that direction's bytes are held, as
  Toxiproxy's ``timeout`` toxic does (new connections still reach the broker);
- ``drop_connections``: reset every open connection once (RST on both sides), as a broker
  failover or a load balancer does; the worker may reconnect at once;
- ``latency``: hold every chunk for a delay before forwarding it, for a duration;
- ``bandwidth``: forward at most a given number of bytes per second each way, for a duration
  (a congested or throttled link: chunks are cut to a twentieth of a second's worth and paced).

One asyncio event loop in a daemon thread of the harness process carries every proxy: it dies
with the harness, so nothing outlives it (there is no process to reap).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

CHUNK = 65536
TO_BROKER, TO_WORKER = "to_broker", "to_worker"  # the two directions a partition may hold
DIRECTIONS = (TO_BROKER, TO_WORKER)
CALL_DEADLINE = 10.0  # seconds a fault call waits for the proxy loop to carry it out


@dataclass(eq=False)
class _Link:
    """One client connection and the upstream connection it was paired with."""

    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def reset(self) -> None:
        """Close both sides with RST (SO_LINGER 0): the peer sees ECONNRESET, not a clean EOF."""
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


class Proxy:
    """One listening port forwarding to ``upstream``; its faults are set from any thread."""

    def __init__(
        self, hub: ProxyHub, name: str, upstream: tuple[str, int], host: str = "127.0.0.1"
    ):
        self.hub, self.name, self.upstream, self.host = hub, name, upstream, host
        self.port = 0
        self.latency = 0.0
        self.rate: int | None = None  # bytes per second each way (None: unlimited)
        # Bytes read from one side and not yet written to the other: held by a partition, a
        # latency or a bandwidth limit. A task message may be among them (see ProxyHub.holds_data).
        # A connection opened during a partition is not counted: it has no broker side yet, so
        # no message can be on it.
        self.in_flight = 0
        self.links: set[_Link] = set()
        self._server: asyncio.base_events.Server | None = None
        self._open: asyncio.Event | None = None  # set while connected (not partitioned)
        self._gates: dict[str, asyncio.Event] = {}  # per direction: set while not held
        self._timer: asyncio.TimerHandle | None = None

    # --- the forwarding (runs on the hub's loop) -------------------------------------
    async def _listen(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._gates = {direction: asyncio.Event() for direction in DIRECTIONS}
        for gate in self._gates.values():
            gate.set()
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link([writer])
        self.links.add(link)
        try:
            assert self._open is not None
            await self._open.wait()  # a partitioned worker's new connection hangs here
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            link.writers.append(up_writer)
            await asyncio.gather(
                self._pipe(reader, up_writer, TO_BROKER), self._pipe(up_reader, writer, TO_WORKER)
            )
        except (OSError, asyncio.CancelledError):  # reset, refused, or the hub closing
            pass
        finally:
            self.links.discard(link)
            for side in link.writers:
                side.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        """Forward one direction: each chunk waits out the latency and any partition (of both
        directions, or of this one)."""
        loop = asyncio.get_running_loop()
        assert self._open is not None
        while data := await reader.read(CHUNK):
            self.in_flight += len(data)
            try:
                due = loop.time() + self.latency
                while not (self._open.is_set() and self._gates[direction].is_set()):
                    await self._open.wait()
                    await self._gates[direction].wait()
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                await self._forward(data, writer)
            finally:
                self.in_flight -= len(data)
        with contextlib.suppress(OSError):
            writer.write_eof()

    async def _forward(self, data: bytes, writer: asyncio.StreamWriter) -> None:
        """Write ``data`` on; under a bandwidth limit in pieces of a twentieth of a second's
        worth, each followed by its share of time, so the pace is smooth, not burst and pause."""
        piece = len(data) if not self.rate else max(1, self.rate // 20)
        for start in range(0, len(data), piece):
            chunk = data[start : start + piece]
            writer.write(chunk)
            await writer.drain()
            if self.rate:
                await asyncio.sleep(len(chunk) / self.rate)

    # --- faults (called from the harness thread) -------------------------------------
    def _later(self, duration: float | None, undo: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if duration:
            self._timer = asyncio.get_running_loop().call_later(duration, undo)

    def partition(self, duration: float | None = None, direction: str | None = None) -> str:
        """Hold every byte (``direction`` None: a blackhole) or only those going ``direction``
        (``to_worker``: the broker's replies; ``to_broker``: the worker's commands)."""

        async def cut() -> None:
            assert self._open is not None
            gate = self._open if direction is None else self._gates[direction]
            gate.clear()
            self._later(duration, gate.set)

        self.hub.call(cut())
        for_how_long = f" for {duration:g}s" if duration else " until healed"
        what = "blackholed" if direction is None else f"held {direction.replace('_', ' ')}"
        return f"{self.name}'s broker connections {what}{for_how_long} (proxy :{self.port})"

    def heal(self) -> str:
        async def mend() -> None:
            assert self._open is not None
            self._later(None, None)
            self._open.set()
            for gate in self._gates.values():
                gate.set()

        self.hub.call(mend())
        return f"{self.name}'s broker connections healed (proxy :{self.port})"

    def drop_connections(self) -> str:
        async def drop() -> int:
            links = list(self.links)
            for link in links:
                link.reset()
            return len(links)

        count = self.hub.call(drop())
        return f"reset {count} open broker connection(s) of {self.name} (proxy :{self.port})"

    def add_latency(self, seconds: float, duration: float | None = None) -> str:
        async def slow() -> None:
            self.latency = seconds

            def undo() -> None:
                self.latency = 0.0

            self._later(duration, undo)

        self.hub.call(slow())
        for_how_long = f" for {duration:g}s" if duration else ""
        return f"{seconds * 1000:g} ms added to {self.name}'s broker traffic{for_how_long}"

    def limit_bandwidth(self, rate: int, duration: float | None = None) -> str:
        async def throttle() -> None:
            self.rate = rate

            def undo() -> None:
                self.rate = None

            self._later(duration, undo)

        self.hub.call(throttle())
        for_how_long = f" for {duration:g}s" if duration else ""
        return f"{self.name}'s broker traffic limited to {rate} bytes/s each way{for_how_long}"

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.reset()


class ProxyHub:
    """The event loop thread that carries every proxy of one run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.proxies: list[Proxy] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="proxy")
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` on the proxy loop and return its result (faults apply at once)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(CALL_DEADLINE)

    def holds_data(self) -> bool:
        """Whether any proxy holds bytes in flight. A message Redis already handed over (BRPOP)
        may be among them: it is in neither the broker nor a worker, so a run is not over."""
        return any(proxy.in_flight for proxy in self.proxies)

    def open(self, name: str, upstream: tuple[str, int], host: str = "127.0.0.1") -> Proxy:
        """A new proxy listening on ``host`` (loopback; docker: the network's gateway only)."""
        proxy = Proxy(self, name, upstream, host)
        self.call(proxy._listen())
        self.proxies.append(proxy)
        return proxy

    def close(self) -> None:
        if not self.loop.is_running():
            return
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                self.call(proxy._close())
        with contextlib.suppress(Exception):
            self.call(_cancel_others())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


async def _cancel_others() -> None:
    """Cancel the forwarding tasks (a partitioned link waits forever) and let them finish."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
