"""Build (install) an engine version in a child process at the lowest priority.

``build_in_background`` is the scheduler's ``Build``: the child runs
``python -m llmfleet.releases.building KIND VERSION`` under ``nice 19`` and, where
``ionice`` exists, the idle I/O class, so a 6-minute llama.cpp compile takes
only the CPU and disk that serving leaves free. The install itself is the
engine adapter's: locked per version, published whole or not at all, so a build
killed half-way is simply started again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import deque
from pathlib import Path

from llmfleet.errors import EngineError

TAIL_LINES = 20


def low_priority_argv(argv: list[str]) -> list[str]:
    """``argv`` under the idle I/O class when ``ionice`` is there; pure but for the look-up."""
    ionice = shutil.which("ionice")
    return [ionice, "-c", "3", *argv] if ionice else argv


def build_in_background(kind: str, version: str, *, cache_dir: Path) -> tuple[str, ...]:
    """Install ``kind`` ``version`` into ``cache_dir`` in a low-priority child; return
    its last lines, or raise ``EngineError`` with them when it fails."""
    argv = low_priority_argv([sys.executable, "-m", "llmfleet.releases.building", kind, version])
    env = {**os.environ, "LLMFLEET_CACHE": str(cache_dir)}
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, errors="replace", preexec_fn=_lower_priority,
    ) as child:  # fmt: skip
        assert child.stdout is not None
        try:
            for line in child.stdout:
                tail.append(line.rstrip())
        except BaseException:
            child.kill()  # never leave a compile behind
            raise
        code = child.wait()
    if code != 0:
        raise EngineError(f"building {kind} {version} exited with {code}: " + " | ".join(tail))
    return tuple(tail)


def _lower_priority() -> None:
    os.nice(19)


def main(argv: list[str]) -> None:
    from llmfleet.engines.registry import get_adapter
    from llmfleet.errors import FleetError
    from llmfleet.settings import Settings

    kind, version = argv
    print(f"building {kind} {version} at nice {os.nice(0)}", flush=True)
    try:
        path = get_adapter(kind).install(
            version, cache_dir=Settings.from_env().cache_dir, progress=lambda line: print(line)
        )
    except FleetError as exc:
        print(f"error: {exc.message}", flush=True)
        sys.exit(1)
    print(f"installed {kind} {version}: {path}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
