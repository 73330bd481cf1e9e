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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmfleet.backends.local.client import LocalBackend  # noqa: E402

EXAMPLE = ROOT / "examples" / "quickstart.yaml"

sys.path.insert(0, str(Path(__file__).parent))
from _quickstart import bare_start, free_port  # noqa: E402


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


def timed_apply(folder: Path) -> tuple[float, float, float]:
    """Seconds from running `llmfleet apply` to the last replica ready (the agent's own
    ready_at stamps), from the replica's spawn to ready, and for the whole command."""
    started = time.time()
    whole = llmfleet(folder, "apply", "--yes")
    replicas = LocalBackend(folder / ".llmfleet").list_replicas("production")
    ready = max(r.ready_at or 0.0 for r in replicas)
    spawn = min(r.started_at or 0.0 for r in replicas)
    return ready - started, ready - spawn, whole


def apply_round(folder: Path) -> dict[str, float]:
    cold = timed_apply(folder)
    noop = llmfleet(folder, "apply", "--yes")
    llmfleet(folder, "destroy", "--yes")
    warm = timed_apply(folder)
    llmfleet(folder, "down")
    return {"cold": cold[0], "warm": warm[0], "runtime": warm[1], "command": warm[2], "noop": noop}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bare: list[float] = []
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = EXAMPLE.read_text().replace("port: 8080", f"port: {free_port()}")
        (folder / "fleet.yaml").write_text(text.replace("port: 8081", f"port: {free_port()}"))
        for _ in range(args.rounds):
            bare.append(bare_start(2))
            rounds.append(apply_round(folder))
    base = statistics.median(bare)
    print(f"load average: {os.getloadavg()[0]:.2f}; rounds: {args.rounds}")
    print(f"{'2 replicas ready (median)':<58}{'s':>7}{'x bare':>9}")
    rows = [
        ("bare llama-server x2, spawn to ready (baseline)", base),
        ("llmfleet apply -> replicas ready, agent running", _median(rounds, "warm")),
        ("llmfleet apply -> replicas ready, agent started by apply", _median(rounds, "cold")),
        ("runtime only: agent spawn -> replicas ready", _median(rounds, "runtime")),
        ("whole apply command (gateway up, revision recorded)", _median(rounds, "command")),
    ]
    for label, value in rows:
        print(f"{label:<58}{value:>7.2f}{value / base:>9.2f}")
    print(
        f"llmfleet adds {_median(rounds, 'warm') / base - 1:.0%} with the agent running "
        f"(goal < 20%); the runtime alone adds {_median(rounds, 'runtime') / base - 1:.0%}"
    )
    print(f"no-op apply: median {_median(rounds, 'noop'):.2f} s (goal < 1 s)")


def _median(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


if __name__ == "__main__":
    main()
