"""The ``llmfleet`` command's entry point: hand the command to a warm process when one is up.

Importing the CLI (pydantic models, SQLAlchemy, typer, rich) costs most of a
second on a small machine: more than a no-op ``apply`` may take in all. While a
project's local agent runs, it keeps a command server beside it
(``llmfleet.cli.server``) that has imported all of that once. This module imports
nothing beyond the standard library: it passes the server the command line, the
working directory, the environment, the umask and the three standard file
descriptors, and waits for the exit status. The command runs in a process forked
for it that reads and writes this terminal directly; the signals a user sends
here (Ctrl-C) are forwarded to it. Mercurial's ``chg`` works the same way.

When no server answers, or it refuses because it runs other code than this
process would (the package was upgraded or edited since it started), the command
runs here, in this process, as usual. ``LLMFLEET_COMMAND_SERVER=0`` always runs
it here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import llmfleet
from llmfleet.backends.local.layout import COMMAND_SOCKET_NAME
from llmfleet.settings import Settings

ENV_SWITCH = "LLMFLEET_COMMAND_SERVER"
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HEADER = struct.Struct("!I")


def main() -> None:
    code = run_in_server(sys.argv)
    if code is None:
        from llmfleet.cli.app import main as run_here

        run_here()
    else:
        sys.exit(code)


def run_in_server(argv: Sequence[str]) -> int | None:
    """The command's exit status, run by the project's command server; None when no
    server took it (then nothing ran and the caller runs it itself)."""
    if os.environ.get(ENV_SWITCH, "1") == "0" or not _standard_streams_open():
        return None
    path = server_socket(argv[1:])
    message = request(argv)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        send_message(sock, message, fds=[0, 1, 2])
    except OSError:
        sock.close()
        return None
    with sock, sock.makefile("rb") as replies:
        first = read_message(replies)
        if first is None or "refused" in first:
            return None  # nothing ran
        pid = int(first["pid"])
        with _forwarding_signals(pid):
            last = read_message(replies)
    if last is None:
        sys.stderr.write(f"llmfleet: the command's process ({pid}) ended without an exit status\n")
        return 1
    return int(last["exit"])


def interpreter() -> list[str]:
    """Which Python this is: the binary and the environment. ``python`` and ``python3``
    in one virtual environment are the same one, so the real path, not the name."""
    return [os.path.realpath(sys.executable), sys.prefix]


def server_socket(args: Sequence[str]) -> Path:
    """The command server of the project whose spec ``-f/--file`` names (./fleet.yaml
    by default). Any server with this code could run any command (the command gets
    our working directory and environment); the project's own is simply the one
    that is up while the project's fleet is."""
    spec = Path(_spec_argument(args))
    home = Settings.from_env(spec_dir=spec.absolute().parent).home
    return home / COMMAND_SOCKET_NAME


def _spec_argument(args: Sequence[str]) -> str:
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-f", "--file") and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--file="):
            return arg.removeprefix("--file=")
        if arg.startswith("-f") and not arg.startswith("--") and len(arg) > 2:
            return arg[2:]
    return "fleet.yaml"


def request(argv: Sequence[str]) -> dict[str, Any]:
    umask = os.umask(0)
    os.umask(umask)
    return {
        "argv": list(argv),
        "cwd": str(Path.cwd()),
        "env": dict(os.environ),
        "umask": umask,
        "interpreter": interpreter(),
        "package": str(Path(llmfleet.__file__).parent),
        "streams": [
            [
                getattr(stream, "encoding", None) or "utf-8",
                getattr(stream, "errors", None) or "strict",
            ]
            for stream in (sys.stdin, sys.stdout, sys.stderr)
        ],
    }


def _standard_streams_open() -> bool:
    for fd, stream in enumerate((sys.stdin, sys.stdout, sys.stderr)):
        if stream is None:
            return False
        try:
            os.fstat(fd)
        except OSError:
            return False
    return True


@contextmanager
def _forwarding_signals(pid: int) -> Iterator[None]:
    def forward(signum: int, _frame: object) -> None:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def send_message(sock: socket.socket, message: dict[str, Any], *, fds: Sequence[int] = ()) -> None:
    """One length-prefixed JSON message; ``fds`` ride along with its first bytes."""
    body = json.dumps(message).encode()
    data = HEADER.pack(len(body)) + body
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    sock.sendall(data[sent:])


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    message = json.loads(body)
    return message if isinstance(message, dict) else None
