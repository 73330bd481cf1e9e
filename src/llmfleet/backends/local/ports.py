"""Replica ports on 127.0.0.1, shared with every other program on the machine.

Every agent (one per project) allocates from the same range, so "free when I
looked" is not enough: two agents applying at the same moment both found the
bottom of the range free, and one project's gateway then served the other's
model. A port is therefore *leased*: an exclusive ``flock`` on
``<folder>/<port>.lock``, held by the agent from allocation until its replica
stops. Chosen over the alternatives because:

- a kernel lock dies with its holder: an agent killed by ``kill -9`` or the OOM
  killer leaves no stale lease (a lock *file* made with ``O_EXCL`` would, and
  would need pid checks that pid reuse defeats);
- it covers the whole life of the replica, restart windows included (a
  bind-and-check at allocation covers only the instant of the check, and a
  bind held until the replica starts needs the engine to inherit the socket,
  which llama-server and vLLM cannot);
- random start offsets only make a clash rarer, never impossible.

The folder is per user (``~/.cache/llmfleet/ports`` of the account, whatever
``$HOME`` says, so every agent of the user finds the same one), private 0700.
Programs of other users and programs that are not llmfleet do not take leases:
for them each allocation still checks that the port can be bound, the
readiness probe proves the engine knows its replica's key (``probing``), and a
replica whose port is taken moves to another (``supervisor``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import socket
from collections.abc import Iterable
from pathlib import Path

from llmfleet.errors import UnsafePathError
from llmfleet.private_files import open_private, private_folder

DEFAULT_RANGE = (20000, 29999)
log = logging.getLogger(__name__)


def port_range_from_env() -> tuple[int, int]:
    """``LLMFLEET_PORT_RANGE=LOW-HIGH`` overrides the range replicas get ports from."""
    raw = os.environ.get("LLMFLEET_PORT_RANGE")
    if not raw:
        return DEFAULT_RANGE
    low, _, high = raw.partition("-")
    return int(low), int(high)


def lease_folder() -> Path:
    """The user's folder of port leases, shared by all of the user's agents."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "llmfleet" / "ports"


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
    """The first port from ``start`` (wrapping in the range) that is neither ours nor busy.

    Not safe against other agents on its own: ``PortLeases`` is."""
    low, high = port_range
    used = set(taken)
    for port in _ports_from(start, port_range):
        if port not in used and port_free(port):
            return port
    raise OSError(f"no free port in {low}-{high}")


def _ports_from(start: int, port_range: tuple[int, int]) -> Iterable[int]:
    low, high = port_range
    size = high - low + 1
    return (low + (start - low + offset) % size for offset in range(size))


class PortLeases:
    """The ports this agent holds; see the module docstring for why a lease is a lock.

    ``folder`` None (it could not be made private) falls back to checking binds
    only, with a warning: the agent still runs, as it did before leases."""

    def __init__(self, *, folder: Path | None, port_range: tuple[int, int]) -> None:
        self.port_range = port_range
        self._folder = _usable(folder)
        self._held: dict[int, int] = {}  # port -> the descriptor holding its lock
        self._next = port_range[0]

    @classmethod
    def for_user(cls, port_range: tuple[int, int]) -> PortLeases:
        return cls(folder=lease_folder(), port_range=port_range)

    def holds(self, port: int) -> bool:
        return port in self._held

    def allocate(self, taken: Iterable[int]) -> int:
        """Lease a port no other agent of this user holds and nothing listens on.
        Raises ``OSError`` naming the range when none is left."""
        used = set(taken) | set(self._held)
        for port in _ports_from(self._next, self.port_range):
            if port in used or not self._lock(port):
                continue
            if port_free(port):
                self._next = port + 1
                return port
            self.release(port)
        low, high = self.port_range
        raise OSError(
            f"no free port in {low}-{high}; set LLMFLEET_PORT_RANGE=LOW-HIGH to a wider range"
        )

    def claim(self, port: int | None, *, taken: Iterable[int]) -> int:
        """``port`` when given (a replica adopted or restored on it keeps it; leased
        when no other agent holds it), else a newly allocated one."""
        if port is None:
            return self.allocate(taken)
        if not self._lock(port):
            log.warning("port %s is leased by another llmfleet agent of this user", port)
        return port

    def move(self, port: int, *, taken: Iterable[int]) -> int:
        """A new port instead of ``port``, which is released (raises ``OSError``
        when no other port is left, and then keeps ``port``)."""
        new = self.allocate({port, *taken})
        self.release(port)
        return new

    def release(self, port: int) -> None:
        fd = self._held.pop(port, None)
        if fd is not None:
            os.close(fd)  # closing drops the flock

    def _lock(self, port: int) -> bool:
        """Take the lease of ``port``; False when another holder has it."""
        if port in self._held:
            return True
        if self._folder is None:
            self._held[port] = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            return True
        try:
            fd = open_private(self._folder / f"{port}.lock", os.O_RDWR | os.O_CREAT)
        except (OSError, UnsafePathError) as exc:  # a planted link, a full disk: skip it
            log.warning("cannot lease port %s: %s", port, exc)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[port] = fd
        return True

    def close(self) -> None:
        for port in list(self._held):
            self.release(port)


def _usable(folder: Path | None) -> Path | None:
    if folder is None:
        return None
    with contextlib.suppress(OSError, UnsafePathError):
        private_folder(folder)
        return folder
    log.warning("cannot use %s for port leases: ports are checked by binding only", folder)
    return None
