"""Rollback time against a bare engine start, and failed requests during promote and rollback.

    .venv/bin/python bench/rollback_time.py [--repeat 4]

Production runs the quickstart (revision A); a candidate (revision B: another
context size, so every replica is replaced) is promoted under load (forced: the
gate is measured by validate_time.py); then `llmfleet rollback` returns to A
under load. Measured in the same run: the bare start of llama-server with the
argv llmfleet gives it, until it passes the same readiness probes (a one-token
generation). Goals: rollback until production
serves on the earlier revision <= 1.5 x the bare start; 0 failed requests
during promote and rollback.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from _quickstart import bare_start, load, project

from llmfleet.backends.local.client import LocalBackend


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
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--repeat", type=int, default=4, help="timed rollbacks and bare starts (best of)"
    )
    repeat = parser.parse_args().repeat
    with project() as p:
        p.write(p.base)
        p.run("apply", "--yes")
        candidate = p.base.replace("context: 4096", "context: 2048")
        # Timing, without load: the same conditions as the bare start it is compared with.
        # The gate is not what this bench measures (bench/validate_time.py is): promote is
        # forced, so a noisy speed verdict cannot stop the run.
        bare, first, whole = [], [], []
        for _ in range(repeat):
            p.write(candidate)
            p.run("promote", "--force", "--reason", "rollback bench")
            bare.append(bare_start(1))
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
    print(f"bare llama-server start, same argv, until it passes the same readiness probes "
          f"(best of {repeat}): {b:.2f} s")
    print(
        f"rollback until production serves on the earlier revision (first restored replica "
        f"ready, best of {repeat}): {f:.2f} s = {f / b:.2f}x bare (goal <= 1.5x)"
    )
    print(f"whole rollback command (both replicas replaced, rolling): {w:.2f} s = {w / b:.2f}x")
    print(
        f"under load: promote {promote_s:.2f} s, requests ok {promote_counts['ok']}, "
        f"failed {promote_counts['failed']} (goal 0); rollback {rollback_s:.2f} s, requests ok "
        f"{rollback_counts['ok']}, failed {rollback_counts['failed']} (goal 0)"
    )


if __name__ == "__main__":
    main()
