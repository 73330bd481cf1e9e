"""Time from `llmfleet apply` to all replicas ready, against a bare llama-server start.

Both sides start 2 replicas of the quickstart service (llama-server + SmolLM2) and
count as ready when every replica answers /health and a one-token generation (the
readiness llmfleet itself uses). Rounds are interleaved (bare, apply, bare, apply,
...) so machine noise hits both; medians and their ratio are printed. Also prints
the no-op apply time (an unchanged spec applied again; goal < 1 s).

    .venv/bin/python bench/apply_time.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmfleet.engines.llamacpp import LlamaCppAdapter  # noqa: E402
from llmfleet.models.store import ModelStore  # noqa: E402
from llmfleet.settings import Settings  # noqa: E402
from llmfleet.spec.loading import load_spec  # noqa: E402

EXAMPLE = ROOT / "examples" / "quickstart.yaml"
PROBE = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "temperature": 0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, deadline: float) -> None:
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    reply = client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=PROBE)
                    if reply.status_code == 200:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"port {port} not ready")


def bare_start(replicas: int) -> float:
    """Start the same argv llmfleet would, directly; seconds until all are ready."""
    spec = load_spec(EXAMPLE).resolved.environments["production"].services["chat"]
    settings = Settings.from_env()
    adapter = LlamaCppAdapter()
    exe = adapter.install(
        spec.engine.version, cache_dir=settings.cache_dir, progress=lambda _: None
    )
    model = ModelStore(settings.cache_dir).resolve(spec.model, base_dir=ROOT).path
    command = adapter.local_command(spec, executable=exe, model_path=model, served_name="chat")
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


def llmfleet(folder: Path, *args: str) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "llmfleet", *args, "-f", str(folder / "fleet.yaml")],
        check=True,
        capture_output=True,
        cwd=folder,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return time.monotonic() - started


def apply_round(folder: Path) -> tuple[float, float, float]:
    """(cold apply incl. agent start, warm apply with the agent running, no-op apply)."""
    cold = llmfleet(folder, "apply", "--yes")
    noop = llmfleet(folder, "apply", "--yes")
    llmfleet(folder, "destroy", "--yes")
    warm = llmfleet(folder, "apply", "--yes")
    llmfleet(folder, "down")
    return cold, warm, noop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bare, cold, warm, noop = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = EXAMPLE.read_text().replace("port: 8080", f"port: {free_port()}")
        (folder / "fleet.yaml").write_text(text.replace("port: 8081", f"port: {free_port()}"))
        for _ in range(args.rounds):
            bare.append(bare_start(2))
            c, w, n = apply_round(folder)
            cold.append(c)
            warm.append(w)
            noop.append(n)
    base = statistics.median(bare)
    print(f"load average: {os.getloadavg()[0]:.2f}; rounds: {args.rounds}")
    print(f"{'2 replicas ready':<44}{'median s':>10}{'x bare':>9}")
    rows = [
        ("bare llama-server x2 (baseline)", bare),
        ("llmfleet apply, agent running", warm),
        ("llmfleet apply, agent started by apply", cold),
    ]
    for label, values in rows:
        print(
            f"{label:<44}{statistics.median(values):>10.2f}{statistics.median(values) / base:>9.2f}"
        )
    added = statistics.median(warm) / base - 1
    print(f"llmfleet adds {added:.0%} with the agent running (goal < 20%)")
    print(f"no-op apply: median {statistics.median(noop):.2f} s (goal < 1 s)")


if __name__ == "__main__":
    main()
