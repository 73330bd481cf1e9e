"""The command server: commands run in a process forked from a warm one, as if run here.

The server is started by hand for most tests (its own socket in a temporary
home) and by the agent, as in real use, for the lifecycle tests.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from llmfleet.backends.local.layout import COMMAND_SOCKET_NAME
from llmfleet.cli import launcher
from llmfleet.cli.server import CommandServer
from tests.fixtures.fleet import Fleet

SPEC = """
version: 1
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.0.0"}
    replicas: 1
gateway: {port: GATEWAY_PORT}
"""

# Runs one command through the server only, never in-process: prints what
# run_in_server returned (None: the server did not take it).
THROUGH_SERVER = textwrap.dedent(
    """
    import sys
    from llmfleet.cli.launcher import run_in_server
    code = run_in_server(["llmfleet", *sys.argv[1:]])
    print(f"\\nserver-exit={code}", flush=True)
    """
)


def wait_for_socket(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"no command server socket at {path}")


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A command server for the project in tmp_path."""
    home = tmp_path / ".llmfleet"
    home.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmfleet.cli.server", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_socket(home / COMMAND_SOCKET_NAME)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path, server_process: subprocess.Popen[bytes]) -> Path:
    """The project folder whose command server runs."""
    return tmp_path


def children_of(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(status.parent.name))
    return found


def through_server(
    project: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", THROUGH_SERVER, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=project,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        timeout=60,
    )


def test_command_runs_in_the_server_with_our_cwd_env_and_streams(server: Path) -> None:
    (server / "fleet.yaml").write_text(SPEC.replace("GATEWAY_PORT", "18999"))
    result = through_server(server, "check")
    assert "server-exit=0" in result.stdout
    assert "ok production: 1 services, 1 replicas, gateway 127.0.0.1:18999" in result.stdout


def test_exit_status_and_stderr_come_back(server: Path) -> None:
    (server / "fleet.yaml").write_text("version: 1\nservices:\n  chat:\n    replicas: 0\n")
    result = through_server(server, "check")
    assert "server-exit=2" in result.stdout
    assert "fleet.yaml:4" in result.stderr and "replicas" in result.stderr


def test_the_client_umask_and_working_directory_apply(server: Path) -> None:
    sub = server / "sub"
    sub.mkdir()
    script = "import os, sys; os.umask(0o077); exec(sys.argv.pop(1))"
    result = subprocess.run(
        [sys.executable, "-c", script, THROUGH_SERVER, "init", "written.yaml"],
        capture_output=True,
        text=True,
        cwd=sub,
        env={**os.environ, "LLMFLEET_HOME": str(server / ".llmfleet")},
        timeout=60,
    )
    assert "server-exit=0" in result.stdout, result.stderr
    written = sub / "written.yaml"
    assert written.is_file()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_usage_errors_name_llmfleet_not_the_server_module(server: Path) -> None:
    result = through_server(server, "apply", "--bogus")
    assert "server-exit=2" in result.stdout
    assert "Usage: llmfleet apply" in result.stderr
    assert "No such option: --bogus" in result.stderr


def test_a_prompt_reads_the_clients_stdin(server: Path) -> None:
    (server / "fleet.yaml").write_text(SPEC.replace("GATEWAY_PORT", "18998"))
    target = server / "fleet.yaml"
    result = through_server(server, "init", str(target), stdin="")
    assert "server-exit=1" in result.stdout and "already exists" in result.stderr
    # `unlock` asks before breaking the lock; "n" from our stdin keeps it.
    from llmfleet.state.store import StateStore

    store = StateStore.open("sqlite:///.llmfleet/state.db", base_dir=server)
    try:
        with store.lock("apply", purpose="a test holding the lock"):
            result = through_server(server, "unlock", stdin="n\n")
            assert "break this lock?" in result.stdout
            assert "server-exit=1" in result.stdout
            assert store.lock_info("apply") is not None
    finally:
        store.close()


def test_a_client_killed_with_sigkill_takes_its_command_with_it(
    server: Path, server_process: subprocess.Popen[bytes]
) -> None:
    """SIGKILL cannot be forwarded: the command notices its client is gone and dies too."""
    (server / "fleet.yaml").write_text(SPEC.replace("GATEWAY_PORT", "18997"))
    from llmfleet.state.store import StateStore

    store = StateStore.open("sqlite:///.llmfleet/state.db", base_dir=server)
    try:
        with store.lock("apply", purpose="a test holding the lock"):
            client = subprocess.Popen(  # `unlock` waits at its prompt: stdin never answers
                [sys.executable, "-c", THROUGH_SERVER, "unlock"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=server,
            )
            deadline = time.monotonic() + 30
            while not children_of(server_process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            (command,) = children_of(server_process.pid)
            client.kill()
            client.wait()
            deadline = time.monotonic() + 10
            while Path(f"/proc/{command}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not Path(f"/proc/{command}").exists()
            assert client.stdin is not None
            client.stdin.close()
    finally:
        store.close()


def test_the_socket_is_this_users_only(server: Path) -> None:
    sock = server / ".llmfleet" / COMMAND_SOCKET_NAME
    assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0  # no group, no others


def test_switched_off_or_absent_server_means_run_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert launcher.run_in_server(["llmfleet", "status"]) is None  # nothing listens
    monkeypatch.setenv(launcher.ENV_SWITCH, "0")
    assert launcher.run_in_server(["llmfleet", "status"]) is None


def test_a_refusal_means_run_here_and_nothing_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that refuses (stale code) has run nothing: the command runs here, once."""
    home = tmp_path / ".llmfleet"
    home.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(home / COMMAND_SOCKET_NAME))
    listener.listen(1)
    monkeypatch.chdir(tmp_path)

    import threading

    seen: list[dict[str, object]] = []

    def refuse() -> None:
        conn, _ = listener.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
            for fd in fds:
                os.close(fd)
            while len(data) < 4 + launcher.HEADER.unpack_from(data)[0]:
                data += conn.recv(1 << 16)
            seen.append(json.loads(data[4:]))
            launcher.send_message(conn, {"refused": "stale"})

    thread = threading.Thread(target=refuse)
    thread.start()
    assert launcher.run_in_server(["llmfleet", "status"]) is None
    thread.join(timeout=10)
    listener.close()
    assert seen and seen[0]["argv"] == ["llmfleet", "status"]
    assert seen[0]["cwd"] == str(tmp_path)


def test_server_refuses_when_its_code_changed_on_disk(tmp_path: Path) -> None:
    server = CommandServer(tmp_path / "cli.sock")
    try:
        request = launcher.request(["llmfleet", "status"])
        assert server.refusal(request) is None
        server.stamps = {**server.stamps, "/nowhere/llmfleet/gone.py": 1}
        assert server.refusal(request) == "stale"
        other = {**request, "interpreter": ["/other/python", sys.prefix]}
        assert server.refusal(other) is not None
    finally:
        server.close()
    assert not (tmp_path / "cli.sock").exists()


def test_python_and_python3_of_one_environment_are_one_interpreter() -> None:
    """A venv's ``python`` and ``python3`` are links to one binary: a command started
    with either is served by a server started with the other."""
    names = [Path(sys.prefix) / "bin" / name for name in ("python", "python3")]
    assert all(path.exists() for path in names)
    script = "import sys; from llmfleet.cli import launcher; print(launcher.interpreter())"
    seen = [
        subprocess.run([exe, "-c", script], capture_output=True, text=True, check=True).stdout
        for exe in names
    ]
    assert seen[0] == seen[1]


def test_spec_argument_finds_the_project(tmp_path: Path) -> None:
    home = (tmp_path / "p" / ".llmfleet" / COMMAND_SOCKET_NAME).resolve()
    spec = str(tmp_path / "p" / "fleet.yaml")
    for args in (["plan", "-f", spec], ["plan", f"--file={spec}"], [f"-f{spec}", "plan"]):
        assert launcher.server_socket(args) == home


def test_agent_keeps_a_server_and_ctrl_c_reaches_the_command(fleet: Fleet) -> None:
    fleet.write(SPEC)
    fleet.run("apply", "--yes")
    sock = fleet.home / COMMAND_SOCKET_NAME
    wait_for_socket(sock)
    # A prompt under a terminal, answered by Ctrl-C: forwarded, the command aborts cleanly.
    child = pexpect.spawn(
        sys.executable,
        ["-m", "llmfleet", "destroy", "-f", str(fleet.spec)],
        cwd=str(fleet.root),
        env={**os.environ, "NO_COLOR": "1"},
        timeout=30,
    )
    child.expect("Destroy production\\?")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert len(fleet.ready()) == 1
    result = through_server(fleet.root, "destroy", "--yes")
    assert "server-exit=0" in result.stdout
    assert fleet.replicas() == []
    fleet.run("down")
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sock.exists()


def test_a_server_whose_agent_died_while_it_started_exits(tmp_path: Path) -> None:
    """The agent passes its pid; a server already reparented (the agent was killed
    while the server imported) exits at once instead of living on unowned."""
    not_the_parent = 1
    done = subprocess.run(
        [sys.executable, "-m", "llmfleet.cli.server", "--home", str(tmp_path),
         "--parent", str(not_the_parent)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0
    assert "command server" not in done.stdout
    assert not (tmp_path / "cli.sock").exists()
