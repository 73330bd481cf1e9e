"""Process bodies for the agent start race; a module of their own so spawn can import them."""

from __future__ import annotations

from multiprocessing.synchronize import Barrier
from pathlib import Path

from llmfleet.backends.local.client import LocalBackend


def start_agent_when_ready(home: str, barrier: Barrier) -> None:
    """Start the local agent of ``home`` (as a command that needs one does) with the others."""
    barrier.wait(timeout=30)
    backend = LocalBackend(Path(home))
    try:
        backend.ensure_agent()
    finally:
        backend.close()
