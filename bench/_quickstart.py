"""Shared by the release benches: the quickstart in a temporary folder, on free ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.spec = root / "fleet.yaml"
        self.port, self.staging_port = free_port(), free_port()
        shutil.copytree(EXAMPLES / "suites", root / "suites")
        self.base = (EXAMPLES / "quickstart.yaml").read_text()
        self.base = self.base.replace("port: 8080", f"port: {self.port}")
        self.base = self.base.replace("port: 8081", f"port: {self.staging_port}")

    def write(self, text: str) -> None:
        self.spec.write_text(text)

    def run(self, *args: str) -> float:
        """Run an llmfleet command; return its wall time; raise on failure."""
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "llmfleet", *args, "-f", str(self.spec)],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "COLUMNS": "160"},
        )
        if done.returncode != 0:
            raise SystemExit(f"llmfleet {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return time.monotonic() - started


@contextmanager
def project() -> Iterator[Project]:
    with tempfile.TemporaryDirectory() as folder:
        p = Project(Path(folder))
        try:
            yield p
        finally:
            subprocess.run(
                [sys.executable, "-m", "llmfleet", "down", "-f", str(p.spec)],
                cwd=p.root,
                capture_output=True,
                check=False,
            )


@contextmanager
def load(port: int, workers: int = 2) -> Iterator[dict[str, int]]:
    """Chat requests through the gateway for the whole block; counts ok and failed."""
    counts = {"ok": 0, "failed": 0}
    done = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=60) as client:
            while not done.is_set():
                body = {
                    "model": "chat",
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": "Say hello."}],
                }
                try:
                    r = client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
                    counts["ok" if r.status_code == 200 else "failed"] += 1
                except httpx.HTTPError:
                    counts["failed"] += 1

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for t in threads:
        t.start()
    try:
        yield counts
    finally:
        done.set()
        for t in threads:
            t.join()


def wait_ready(port: int, deadline: float) -> None:
    """Until the engine passes the readiness probes llmfleet itself runs (the adapter's)."""
    from llmfleet.engines.llamacpp import LlamaCppAdapter

    probes = LlamaCppAdapter().readiness
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            try:
                if all(
                    (client.get(base + probe.path) if probe.body is None
                     else client.post(base + probe.path, json=dict(probe.body))).status_code
                    == 200
                    for probe in probes
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"port {port} not ready")


def bare_start(replicas: int) -> float:
    """Start ``replicas`` llama-servers with the argv llmfleet gives the quickstart's
    service, by hand; seconds until all pass the same readiness probes."""
    from llmfleet.engines.llamacpp import LlamaCppAdapter
    from llmfleet.models.store import ModelStore
    from llmfleet.settings import Settings
    from llmfleet.spec.loading import load_spec

    spec = load_spec(EXAMPLES / "quickstart.yaml").resolved.environments["production"]
    service = spec.services["chat"]
    settings = Settings.from_env()
    adapter = LlamaCppAdapter()
    exe = adapter.install(
        service.engine.version, cache_dir=settings.cache_dir, progress=lambda _: None
    )
    model = ModelStore(settings.cache_dir).resolve(service.model, base_dir=EXAMPLES).path
    command = adapter.local_command(service, executable=exe, model_path=model, served_name="chat")
    ports = [free_port() for _ in range(replicas)]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [a.replace("{port}", str(p)) for a in command.argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        for port in ports:
            wait_ready(port, started + 120)
        return time.monotonic() - started
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
