"""Process bodies for the lock tests; a module of their own so spawn can import them."""

from __future__ import annotations

import os
import sys
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from llmfleet.errors import LockHeldError
from llmfleet.state import StateStore


def contend(url: str, base_dir: str, barrier: Barrier, results: Queue[tuple[str, ...]]) -> None:
    """Try the apply lock when every contender is ready; hold it a while if won."""
    with StateStore.open(url, base_dir=Path(base_dir), user=f"contender{os.getpid()}") as store:
        barrier.wait(timeout=30)
        try:
            with store.lock(purpose="apply production") as info:
                results.put(("won", info.holder, info.since))
                time.sleep(1.0)  # longer than the others need to try
        except LockHeldError as exc:
            results.put(("lost", exc.holder, exc.since))


def open_fresh(
    base_dirs: list[str], barrier: Barrier, results: Queue[list[str]]
) -> None:
    """Open each fresh SQLite state the moment every opener is ready; report failures."""
    failures = []
    for base_dir in base_dirs:
        barrier.wait(timeout=30)
        try:
            StateStore.open("sqlite:///state.db", base_dir=Path(base_dir), settle=False).close()
        except Exception as exc:  # the test shows what failed, whatever it was
            failures.append(f"{type(exc).__name__}: {exc}")
    results.put(failures)


def take_and_crash(url: str, base_dir: str) -> None:
    """Take the lock, print the holder, and die without releasing it."""
    store = StateStore.open(url, base_dir=Path(base_dir), user="crasher")
    with store.lock(purpose="apply that crashes"):
        print(store.lock_info().holder, flush=True)  # type: ignore[union-attr]
        os._exit(9)


if __name__ == "__main__":
    take_and_crash(sys.argv[1], sys.argv[2])
