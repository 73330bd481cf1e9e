"""Port allocation on 127.0.0.1 without clashes, with ours or with other programs."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

DEFAULT_RANGE = (20000, 29999)


def port_range_from_env() -> tuple[int, int]:
    """``LLMFLEET_PORT_RANGE=LOW-HIGH`` overrides the range replicas get ports from."""
    raw = os.environ.get("LLMFLEET_PORT_RANGE")
    if not raw:
        return DEFAULT_RANGE
    low, _, high = raw.partition("-")
    return int(low), int(high)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on ``host:port`` and we could bind it now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def allocate_port(taken: Iterable[int], *, start: int, port_range: tuple[int, int]) -> int:
    """The first port from ``start`` (wrapping in the range) that is neither ours nor busy."""
    low, high = port_range
    used = set(taken)
    size = high - low + 1
    for offset in range(size):
        port = low + (start - low + offset) % size
        if port not in used and port_free(port):
            return port
    raise OSError(f"no free port in {low}-{high}")
