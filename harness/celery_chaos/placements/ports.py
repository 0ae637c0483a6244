"""Ports on this host's loopback, for whatever a placement publishes or listens on."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (a server started on it may
    still lose a race with another process: callers retry on a clash)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
