"""The agent's upgrade ticks: ``llmfleet upgrade tick`` on a schedule, one at a time.

The agent knows the spec file of each environment from the apply that set its
config (``spec_file``), and which services have an ``upgrades:`` policy. While
production has one, it runs a tick every ``LLMFLEET_UPGRADE_TICK_S`` seconds
(default 300): a child process, so the release machinery (validation, builds)
never runs inside the agent, which must keep supervising replicas; and in a
session of its own, so a tick that is building survives an agent restart and
keeps its locks (the next agent's tick sees it busy and leaves it be). ``llmfleet
down`` stops the agent and the running tick with it.

The tick decides for itself what to do (``releases.scheduling``): most ticks
only read the state and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llmfleet.backends.local.layout import LOGS_FOLDER
from llmfleet.private_files import open_private, private_folder

log = logging.getLogger(__name__)
TICK_ENV = "LLMFLEET_UPGRADE_TICK_S"
DEFAULT_TICK_S = 300.0
STOP_GRACE_S = 10.0
PRODUCTION = "production"


def tick_period_from_env(environ: Mapping[str, str]) -> float:
    try:
        return max(0.2, float(environ.get(TICK_ENV, DEFAULT_TICK_S)))
    except ValueError:
        return DEFAULT_TICK_S


def upgrade_spec(environments: Mapping[str, Any]) -> str | None:
    """The spec file to tick for, when production has a service with a policy; pure."""
    production = environments.get(PRODUCTION) or {}
    spec = production.get("spec_file")
    services = production.get("services") or {}
    with_policy = any(isinstance(s, dict) and s.get("upgrades") for s in services.values())
    return spec if isinstance(spec, str) and spec and with_policy else None


class UpgradeTicker:
    """Runs ticks while the agent serves; ``environments`` is the agent's config."""

    def __init__(
        self, *, home: Path, environments: Callable[[], Mapping[str, Any]], period_s: float
    ) -> None:
        self.home = home
        self.environments = environments
        self.period_s = period_s
        self.child: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            spec = upgrade_spec(self.environments())
            if spec is None:
                continue
            try:
                await self._tick(spec)
            except OSError as exc:  # a full disk, a deleted home: try again next time
                log.error("upgrade tick for %s could not run: %s", spec, exc)

    async def _tick(self, spec: str) -> None:
        folder = self.home / LOGS_FOLDER
        private_folder(folder)
        fd = open_private(folder / "upgrades.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            self.child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "llmfleet", "upgrade", "tick", "-f", spec,
                cwd=str(Path(spec).parent), stdin=asyncio.subprocess.DEVNULL, stdout=fd,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "LLMFLEET_HOME": str(self.home), "NO_COLOR": "1"},
            )  # fmt: skip
        finally:
            os.close(fd)
        await self.child.wait()
        self.child = None

    async def stop(self) -> None:
        """Stop ticking, and the tick that runs (its build and validation with it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        child = self.child
        if child is None or child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), timeout=STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            await child.wait()
