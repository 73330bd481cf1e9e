"""Who holds a TCP port on this machine, read from ``/proc`` (Linux), for messages.

"port 8080 is already in use" sends a person hunting with ``ss -ltnp``; naming the
process (``pid 4242 (python3 -m http.server 8080)``) says whether to stop it or to
choose another port. The kernel lists listening sockets in ``/proc/net/tcp`` and
``tcp6`` by inode, and each process's open sockets under ``/proc/PID/fd``; another
user's processes cannot be read without privileges, and then the holder is said to
be unknown rather than guessed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from llmfleet.backends.local.ports import port_free

LISTEN = "0A"
"""A socket's state in ``/proc/net/tcp``: listening."""
CMDLINE_CHARS = 120


@dataclass(frozen=True, slots=True)
class PortHolder:
    """The process that listens on a port, as far as this user may know it."""

    port: int
    pid: int | None = None
    command: str | None = None

    def describe(self) -> str:
        if self.pid is None:
            return (
                f"port {self.port} is in use by a process this user cannot see (another "
                f"user's, or in another network namespace; `sudo ss -ltnp 'sport = :{self.port}'` "
                "names it)"
            )
        return f"port {self.port} is in use by pid {self.pid} ({self.command or 'unknown'})"


def port_holder(
    port: int, host: str = "127.0.0.1", *, proc: Path = Path("/proc")
) -> PortHolder | None:
    """Who keeps ``host:port`` from being bound now; None when it can be bound."""
    if port_free(port, host):
        return None
    inodes = _listening_inodes(port, proc)
    pid = _owner(inodes, proc) if inodes else None
    return PortHolder(port, pid, None if pid is None else _command(pid, proc))


def _listening_inodes(port: int, proc: Path) -> set[str]:
    wanted = f"{port:04X}"
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == LISTEN and fields[1].endswith(f":{wanted}"):
                    inodes.add(fields[9])
    return inodes - {"0"}


def _owner(inodes: set[str], proc: Path) -> int | None:
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) in targets:
                        return int(entry.name)
    return None


def _command(pid: int, proc: Path) -> str | None:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    if len(command) > CMDLINE_CHARS:
        command = command[: CMDLINE_CHARS - 3] + "..."
    return command or None
