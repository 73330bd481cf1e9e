"""``llmfleet`` hands nothing to a socket it finds in the project.

A command server once took each command over ``.llmfleet/cli.sock``: whoever could
put a socket there received the user's environment, terminal and signals. The CLI
now runs every command in its own process and never connects there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.fixtures.specs import one_sim_service

SPEC = one_sim_service(port=18080)


def test_a_socket_planted_at_the_old_command_server_path_receives_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "fleet.yaml").write_text(SPEC)
    home = tmp_path / ".llmfleet"
    home.mkdir(mode=0o700)
    received: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(home / "cli.sock"))
        listener.listen()
        listener.settimeout(0.05)
        done = threading.Event()

        def record() -> None:
            while not done.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(5)
                    received.append(conn.recv(1 << 16) or b"(connected)")

        thread = threading.Thread(target=record)
        thread.start()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "llmfleet", "status", "-f", "fleet.yaml"],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
                env={**os.environ, "LLMFLEET_TEST_SECRET": "s3cret", "NO_COLOR": "1"},
            )
        finally:
            done.set()
            thread.join()
    assert received == []
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stdout
