"""Who holds a port, from /proc: named when this user may see it, said to be unknown
when not (another user's process), never guessed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from llmfleet.backends.local.port_holders import port_holder


def test_a_free_port_has_no_holder_and_a_taken_one_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.listen()
        holder = port_holder(port)
    assert port_holder(port) is None
    assert holder is not None and holder.pid == os.getpid()
    assert holder.describe().startswith(f"port {port} is in use by pid {os.getpid()} (")


def test_a_holder_this_user_cannot_see_is_said_to_be_unknown(tmp_path: Path) -> None:
    """/proc lists the socket but no process of ours holds it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        (tmp_path / "net").mkdir()
        (tmp_path / "net" / "tcp").write_text(Path("/proc/net/tcp").read_text())
        (tmp_path / "1" / "fd").mkdir(parents=True)  # a process whose fds name no socket
        holder = port_holder(port, proc=tmp_path)
    assert holder is not None and holder.pid is None
    assert "cannot see" in holder.describe() and f"sport = :{port}" in holder.describe()
