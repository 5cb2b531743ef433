"""Free ports for the servers a test or benchmark starts: ports are shared on this machine."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing listens on now (for a server a test or benchmark is about to start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
