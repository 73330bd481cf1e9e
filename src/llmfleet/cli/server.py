"""The CLI's command server: the CLI imported once, a process forked per command.

``python -m llmfleet.cli.server --home H`` is started by the local agent beside
itself and stopped with it (see ``llmfleet.cli.launcher`` for the client side and
why). It listens on ``H/cli.sock`` (no access for group or others, and a peer
of another user is turned away) and, for each request, forks a process that
takes the client's standard file descriptors, working directory, umask and
environment, runs the command with the already imported CLI, and reports its
pid first and its exit status last. The server itself never runs a command and
holds no state between them.

It refuses (and then exits, so the agent starts a fresh one) when any of its
llmfleet modules changed on disk since it imported them, so an edited or
upgraded package never runs as its old self. It exits when its parent, the
agent, is gone.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import io
import os
import signal
import socket
import struct
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, NoReturn

from llmfleet.backends.local.layout import COMMAND_SOCKET_NAME
from llmfleet.cli.launcher import HEADER, interpreter, read_message, send_message

# What commands import lazily, imported here once so that no command pays for it.
PRELOAD = (
    "llmfleet.cli.app",
    "llmfleet.cli.applying",
    "llmfleet.cli.asking",
    "llmfleet.apply.executor",
    "llmfleet.plan.diff",
    "llmfleet.spec.schema",
    "llmfleet.spec.examples",
    "llmfleet.releases.rollback",
    "llmfleet.releases.promotion",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlite3",
    "httpx",
    "pwd",  # the state's user name
    "stringprep",  # httpx's IDNA check of a URL (ask)
)
PARENT_CHECK_S = 1.0


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    from llmfleet.cli.app import click_command

    click_command()
    import httpx

    # the first transport imports httpcore, h11 and anyio: every command talks to the agent
    httpx.HTTPTransport(uds=os.devnull, verify=False).close()


def fingerprint() -> dict[str, int]:
    """Modification times of the llmfleet modules this process has imported."""
    stamps: dict[str, int] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.partition(".")[0] == "llmfleet" and path:
            try:
                stamps[path] = Path(path).stat().st_mtime_ns
            except OSError:
                stamps[path] = -1
    return stamps


class CommandServer:
    def __init__(self, socket_path: Path, parent: int | None = None) -> None:
        self.socket_path = socket_path
        self.parent = os.getppid() if parent is None else parent
        self.package = str(Path(sys.modules["llmfleet"].__file__ or "").parent)
        self.stamps = fingerprint()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        old_umask = os.umask(0o077)
        try:
            self.listener.bind(str(socket_path))
        finally:
            os.umask(old_umask)
        self.inode = socket_path.stat().st_ino
        self.listener.listen(64)
        self.listener.settimeout(PARENT_CHECK_S)

    def serve(self) -> None:
        # Children are reaped by the kernel; each child puts the default back.
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        try:
            while os.getppid() == self.parent:
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    if not self.handle(conn):
                        return
        finally:
            self.close()

    def close(self) -> None:
        self.listener.close()
        # Only our own socket file: a successor may have bound the path already.
        with contextlib.suppress(OSError):
            if self.socket_path.stat().st_ino == self.inode:
                self.socket_path.unlink()

    def handle(self, conn: socket.socket) -> bool:
        """Serve one request; False when this server should exit (its code is stale)."""
        conn.settimeout(5.0)
        fds: list[int] = []
        try:
            if _peer_uid(conn) != os.getuid():
                return True
            message, fds = _receive(conn)
            refusal = self.refusal(message)
            if refusal is not None:
                send_message(conn, {"refused": refusal})
                return refusal != "stale"
            conn.settimeout(None)
            if os.fork() == 0:
                _run_child(self.listener, conn, fds, message)
            return True
        except (OSError, ValueError, KeyError, struct.error) as exc:
            print(f"command server: bad request: {exc}", file=sys.stderr, flush=True)
            return True
        finally:
            for fd in fds:
                os.close(fd)

    def refusal(self, message: dict[str, Any]) -> str | None:
        if message.get("interpreter") != interpreter() or message.get("package") != self.package:
            return "another python or llmfleet"
        if fingerprint() != self.stamps:
            return "stale"
        return None


def _peer_uid(conn: socket.socket) -> int:
    credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        chunk = conn.recv(1 << 16)
        if not chunk:
            raise ValueError("request cut short")
        data += chunk
    message = read_message(io.BytesIO(data))
    if message is None:
        raise ValueError("not a request")
    return message, fds


def _run_child(
    listener: socket.socket, conn: socket.socket, fds: list[int], message: dict[str, Any]
) -> NoReturn:
    code = 1
    try:
        listener.close()
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _adopt_client(fds, message)
        send_message(conn, {"pid": os.getpid()})
        threading.Thread(target=_die_with_client, args=(conn,), daemon=True).start()
        code = _run_command(message["argv"])
    finally:
        with contextlib.suppress(Exception):
            send_message(conn, {"exit": code})
        os._exit(code)


def _die_with_client(conn: socket.socket) -> None:
    """The client sends nothing after its request: the end of the stream means it is gone
    (killed with SIGKILL, which it cannot forward). A command run in-process would have
    died with it, so this one does too."""
    with contextlib.suppress(OSError):
        while conn.recv(1024):
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def _adopt_client(fds: list[int], message: dict[str, Any]) -> None:
    """Become the client's process, as far as the command can tell."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.chdir(message["cwd"])
    os.umask(int(message["umask"]))
    os.environ.clear()
    os.environ.update(message["env"])
    streams = [*message.get("streams", []), *[["utf-8", "strict"]] * 3][:3]
    sys.stdin = _text_stream(0, "r", *streams[0])
    sys.stdout = _text_stream(1, "w", *streams[1])
    sys.stderr = _text_stream(2, "w", *streams[2])
    sys.argv = list(message["argv"])


def _text_stream(fd: int, mode: str, encoding: str, errors: str) -> io.TextIOWrapper:
    raw = io.FileIO(fd, mode, closefd=False)
    buffered: io.BufferedReader | io.BufferedWriter = (
        io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    )
    return io.TextIOWrapper(
        buffered,
        encoding=encoding,
        errors=errors,
        line_buffering=mode == "w" and (fd == 2 or os.isatty(fd)),
    )


def _run_command(argv: list[str]) -> int:
    from llmfleet.cli import output
    from llmfleet.cli.app import main

    output.reset()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="llmfleet-command-server")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument(
        "--parent",
        type=int,
        help="the agent's pid: gone already (killed while this imported), exit at once",
    )
    args = parser.parse_args(argv)
    preload()
    if threading.active_count() != 1:  # forking a threaded process is unsafe
        raise SystemExit("command server: a preloaded module started a thread")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.parent is not None and os.getppid() != args.parent:
        return  # reparented: the agent died before this server was up
    server = CommandServer(args.home.resolve() / COMMAND_SOCKET_NAME, args.parent)
    print(f"llmfleet command server {os.getpid()} on {server.socket_path}", flush=True)
    server.serve()


if __name__ == "__main__":
    main()
