"""The local runtime trusts nothing in its home (``.llmfleet``) that it did not write.

It runs as the user who runs ``llmfleet``, often root. A table, socket or log that
another local user could have put there is refused with the path, its owner or mode
and the fix, never read, connected to or followed; what the runtime writes is this
user's only (0700 folders, 0600 files) whatever the umask. Where the tests run as
root (here and in CI) the other user is real: a forked child that becomes
``nobody`` plants the file or serves the socket.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.local.agent import Agent
from llmfleet.backends.local.agent_http import build_app
from llmfleet.backends.local.client import LocalBackend
from llmfleet.backends.local.failed import FailedReplica
from llmfleet.backends.local.layout import SOCKET_NAME, STATE_NAME
from llmfleet.errors import FleetError
from tests.fixtures.specs import one_sim_service

NOBODY = 65534
ROOT = os.geteuid() == 0


def as_nobody(action: Callable[[], None]) -> None:
    """Run ``action`` in a forked child that has become user ``nobody``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child acting as nobody failed"


@pytest.fixture
def project() -> Iterator[Path]:
    """A project folder others may read, like one in /srv (pytest's tmp_path is 0700
    all the way up, so another user could not reach into it at all)."""
    folder = Path(tempfile.mkdtemp(prefix="llmfleet-trust-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def home(project: Path) -> Path:
    folder = project / ".llmfleet"
    folder.mkdir(mode=0o700)
    return folder


def planted_table(marker: Path) -> dict[str, object]:
    """An agent table whose one replica would run a command of the attacker's choosing."""
    argv = ["/bin/sh", "-c", f"touch {marker}"]
    spec = {
        "replica_id": "production-chat-0-abc",
        "environment": "production",
        "service": "chat",
        "slot": 0,
        "runtime_hash": "",
        "engine": "sim",
        "engine_version": "1",
        "launch": {"argv": argv, "env": {}},
        "readiness": [{"path": "/health"}],
        "liveness": {"path": "/health"},
        "metrics_path": "/metrics",
        "served_name": "chat",
    }
    return {"replicas": [{"spec": spec, "port": 1, "pid": None}], "environments": {}}


async def restore_from(home: Path) -> Agent:
    """An agent that restores from ``home``; shut down by the caller."""
    session = aiohttp.ClientSession()
    agent = Agent(home=home, session=session)
    agent.stopped.clear()
    try:
        agent.restore()
    except BaseException:
        await stop(agent, session)
        raise
    agent.test_session = session  # type: ignore[attr-defined]
    return agent


async def stop(agent: Agent, session: aiohttp.ClientSession) -> None:
    await agent.shutdown()
    await agent.observer.stop()
    await session.close()


def plant_state_as_nobody(home: Path, marker: Path) -> None:
    """Another user wrote the agent's table (while the folder let them, or into a
    folder they made): the file is theirs."""
    path = home / STATE_NAME
    path.write_text(json.dumps(planted_table(marker)))
    if ROOT:
        os.chown(path, NOBODY, NOBODY)
    else:  # no second user without root: the mode says others could write it
        path.chmod(0o666)


@pytest.mark.parametrize(
    "plant",
    ["owned by another user", "writable by others", "a symlink"],
)
async def test_restore_refuses_an_agent_table_it_did_not_write(
    home: Path, project: Path, plant: str
) -> None:
    """A planted table would run any argv as this user at the next apply: the agent
    refuses it, naming the file and the fix, and starts nothing."""
    marker = project / "ran"
    path = home / STATE_NAME
    if plant == "owned by another user":
        plant_state_as_nobody(home, marker)
        says = "owned by" if ROOT else "writable by"
    elif plant == "writable by others":
        path.write_text(json.dumps(planted_table(marker)))
        path.chmod(0o646)
        says = "writable by"
    else:
        target = project / "elsewhere.json"
        target.write_text(json.dumps(planted_table(marker)))
        path.symlink_to(target)
        says = "symbolic link"
    with pytest.raises(FleetError, match=says) as caught:
        agent = await restore_from(home)
        await stop(agent, agent.test_session)  # type: ignore[attr-defined]
    assert str(path) in caught.value.message
    assert caught.value.hint
    assert not marker.exists()


async def test_a_state_file_of_our_own_is_restored(home: Path, project: Path) -> None:
    """The checks refuse only what another user could have written."""
    failed = FailedReplica(
        status=ReplicaStatus(
            replica_id="x-chat-0", environment="x", service="chat", slot=0, runtime_hash="h",
            engine="sim", engine_version="1", state=ReplicaState.CRASH_LOOP, port=1,
        ),
        reason="crash-looping",
        stopped_at=1.0,
    )
    (home / STATE_NAME).write_text(json.dumps({"replicas": [], "failed": [failed.to_json()]}))
    (home / STATE_NAME).chmod(0o600)
    agent = await restore_from(home)
    try:
        assert agent.failed.of("x") == [failed]
    finally:
        await stop(agent, agent.test_session)  # type: ignore[attr-defined]


def serve_fake_agent_as_nobody(path: Path) -> tuple[int, int]:
    """Another user's process listening on ``path`` (bound as nobody in a folder that
    user may write, so the socket file is theirs; without root, as this user); returns
    (pid, read end of a pipe that gets every request it receives)."""
    read_end, write_end = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            if ROOT:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(path))
            listener.listen()
            os.write(ready_w, b"1")
            while True:
                conn, _ = listener.accept()
                with conn:
                    os.write(write_end, conn.recv(65536))  # nothing for a bare connect
                    body = b'{"generation": 0, "replicas": [], "gateways": []}'
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                    )
        finally:
            os._exit(0)
    os.close(write_end)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    return pid, read_end


def end_child(pid: int) -> None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def received(read_end: int) -> bytes:
    os.set_blocking(read_end, False)
    try:
        return os.read(read_end, 65536)
    except BlockingIOError:
        return b""
    finally:
        os.close(read_end)


@pytest.mark.parametrize("socket_file", ["theirs", "chowned to us"])
def test_the_cli_never_talks_to_an_agent_socket_of_another_user(
    home: Path, project: Path, socket_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket served by another user's process (whether or not the file is ours)
    receives no request: the specs, keys and environment the CLI sends are this
    user's. (A bare connect, which sends nothing, is how the peer's uid is learnt.)"""
    drop = project / "drop"
    drop.mkdir()
    drop.chmod(0o777)  # somewhere the other user may write
    pid, requests = serve_fake_agent_as_nobody(drop / "sock")
    says, named = "nobody|65534", home / SOCKET_NAME
    try:
        (drop / "sock").rename(home / SOCKET_NAME)
        if socket_file == "chowned to us":
            os.chown(home / SOCKET_NAME, os.geteuid(), os.getegid())
        if not ROOT:  # no second user: this process plays another one instead
            me = os.geteuid()
            monkeypatch.setattr(os, "geteuid", lambda: me + 1)
            says, named = "owned by", home
        backend = LocalBackend(home)
        try:
            with pytest.raises(FleetError, match=says) as caught:
                backend.list_replicas()
        finally:
            backend.close()
    finally:
        end_child(pid)
    assert str(named) in caught.value.message
    assert received(requests) == b""


@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_home_others_can_write_is_refused_with_the_fix(home: Path, mode: int) -> None:
    home.chmod(mode)
    backend = LocalBackend(home)
    with pytest.raises(FleetError, match="writable by") as caught:
        backend.running()
    assert f"{mode:o}" in caught.value.message
    assert caught.value.hint is not None and f"chmod 700 {home}" in caught.value.hint


def test_a_home_made_by_another_user_is_refused_with_the_fix(project: Path) -> None:
    home = project / ".llmfleet"
    if ROOT:
        project.chmod(0o777)
        as_nobody(lambda: home.mkdir(mode=0o700))
        project.chmod(0o755)
        says = "owned by"
    else:
        home.mkdir(mode=0o777)
        says = "writable by"
    backend = LocalBackend(home)
    try:
        with pytest.raises(FleetError, match=says) as caught:
            backend.ensure_agent()
    finally:
        stop_any_agent(home)
        backend.close()
    assert str(home) in caught.value.message
    assert not (home / "agent.log").exists()


def test_a_symlinked_agent_log_is_refused_not_appended_to(home: Path, project: Path) -> None:
    """Before: ``agent.log`` as a link made the agent's output land in the target."""
    victim = project / "victim"
    victim.write_text("untouched\n")
    (home / "agent.log").symlink_to(victim)
    backend = LocalBackend(home)
    try:
        with pytest.raises(FleetError, match="symbolic link") as caught:
            backend.ensure_agent()
    finally:
        stop_any_agent(home)
        backend.close()
    assert str(home / "agent.log") in caught.value.message
    assert victim.read_text() == "untouched\n"


def test_a_symlinked_agent_lock_is_refused_and_no_agent_starts(home: Path, project: Path) -> None:
    """The agent's lock is a file of its home like the others: a link placed there is
    refused with its path (the agent says why, in its log), never opened."""
    victim = project / "victim"
    victim.write_text("untouched\n")
    (home / "agent.lock").symlink_to(victim)
    backend = LocalBackend(home)
    try:
        with pytest.raises(FleetError, match="refused to start") as caught:
            backend.ensure_agent()
        assert not backend.running()
    finally:
        stop_any_agent(home)
        backend.close()
    assert "agent.log" in (caught.value.hint or "")
    assert "agent.lock" in (home / "agent.log").read_text()
    assert victim.read_text() == "untouched\n"


def test_a_home_created_readable_by_others_is_tightened(home: Path) -> None:
    """An earlier llmfleet made the home 0755 and its files 0644: they are this
    user's, so they are made private rather than refused."""
    home.chmod(0o755)
    (home / STATE_NAME).write_text("{}")
    (home / STATE_NAME).chmod(0o644)
    backend = LocalBackend(home)
    assert backend.running() is False
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def stop_any_agent(home: Path) -> None:
    """Shut down an agent a test started in ``home``, asking its socket directly (the
    client refuses a home it distrusts, and a test must not leave an agent behind)."""
    path = home / SOCKET_NAME
    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.connect(str(path))
        except OSError:
            return
        conn.sendall(b"POST /v1/shutdown HTTP/1.1\r\nHost: agent\r\nContent-Length: 0\r\n\r\n")
        conn.recv(4096)
    deadline = time.monotonic() + 30
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def modes_under(home: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (kind, mode) of everything under ``home`` (home itself as '.')."""
    found = {}
    for path in [home, *sorted(home.rglob("*"))]:
        info = path.lstat()
        kind = "dir" if stat.S_ISDIR(info.st_mode) else "socket" if stat.S_ISSOCK(
            info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else "other"  # fmt: skip
        found[str(path.relative_to(home))] = (kind, stat.S_IMODE(info.st_mode))
    return found


SIM_SPEC = one_sim_service(port="PORT")


def test_everything_the_runtime_writes_is_private_whatever_the_umask(project: Path) -> None:
    """A real apply under umask 000: the home and its folders 0700, every file 0600
    (state.db and its -wal/-shm, the agent's table and log, replica and gateway logs),
    the socket reachable by this user only."""
    from tests.fixtures.fleet import free_port

    spec = project / "fleet.yaml"
    spec.write_text(SIM_SPEC.replace("PORT", str(free_port())))
    env = {**os.environ, "NO_COLOR": "1"}

    def llmfleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmfleet", *args, "-f", str(spec)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=project,
            env=env,
        )

    home = project / ".llmfleet"
    umask = os.umask(0)  # the child inherits it
    try:
        applied = llmfleet("apply", "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        modes = modes_under(home)
    finally:
        os.umask(umask)
        stop_any_agent(home)
    assert {"state.db", STATE_NAME, "agent.log", SOCKET_NAME} <= set(modes), modes
    assert any(name.startswith("logs/production/") for name in modes), modes
    for name, (kind, mode) in modes.items():
        if kind == "dir":
            assert mode == 0o700, (name, modes)
        elif kind == "socket":
            assert mode & 0o077 == 0, (name, modes)
        else:
            assert (kind, mode) == ("file", 0o600), (name, modes)


@pytest.fixture
async def agent_api(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The agent's real HTTP API over a real socket, on a home in ``tmp_path``."""
    async with aiohttp.ClientSession() as session:
        agent = Agent(home=tmp_path, session=session)
        client = TestClient(TestServer(build_app(agent)))
        await client.start_server()
        try:
            yield client
        finally:
            await client.close()
            await agent.shutdown()
            await agent.observer.stop()


def replica_body(**fields: str) -> dict[str, object]:
    spec = planted_table(Path("/nonexistent"))["replicas"][0]["spec"]  # type: ignore[index]
    return {**spec, "launch": {"argv": ["/bin/true"], "env": {}}, **fields}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("replica_id", "../../../escaped"),
        ("replica_id", "a/b"),
        ("environment", "../.."),
        ("service", "chat*"),
        ("replica_id", ""),
    ],
)
async def test_a_replica_with_a_path_or_pattern_for_a_name_is_refused(
    agent_api: TestClient[web.Request, web.Application], tmp_path: Path, field: str, value: str
) -> None:
    """Before: a replica_id of ``../../..`` put its log file outside the home."""
    response = await agent_api.post("/v1/replicas", json=replica_body(**{field: value}))
    assert response.status == 400
    assert field in (await response.json())["error"]
    assert not list(tmp_path.parent.glob("escaped*"))
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").rglob("*.log"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/replicas/*/logs"),
        ("GET", "/v1/replicas/..%2F..%2Fx/logs"),
        ("POST", "/v1/replicas/a*/stop"),
        ("GET", "/v1/replicas?environment=../x"),
        ("PUT", "/v1/environments/p*"),
        ("GET", "/v1/environments/..."),
        ("PUT", "/v1/gateways/a.b"),
    ],
)
async def test_ids_in_paths_and_queries_are_checked_before_use(
    agent_api: TestClient[web.Request, web.Application], tmp_path: Path, method: str, path: str
) -> None:
    """Before: ``GET /v1/replicas/*/logs`` answered with another replica's log."""
    other = tmp_path / "logs" / "production" / "production-chat-0-abc.log"
    other.parent.mkdir(parents=True)
    other.write_text("a line of another replica\n")
    response = await agent_api.request(method, path, json={"services": {}})
    assert response.status == 400, await response.text()
    assert "must be" in (await response.json())["error"]


async def test_an_environment_config_with_a_bad_service_name_is_refused(
    agent_api: TestClient[web.Request, web.Application],
) -> None:
    response = await agent_api.put("/v1/environments/p", json={"services": {"../x": {}}})
    assert response.status == 400
    assert "../x" in (await response.json())["error"]
