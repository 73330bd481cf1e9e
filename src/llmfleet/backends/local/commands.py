"""The CLI's command server, run beside the agent and stopped with it.

While a project's agent runs, ``llmfleet`` commands in that project are handed
to a server process that has imported the CLI once (``llmfleet.cli.server``), so
a no-op ``apply`` or a ``status`` does not pay for importing it every time. The
agent only keeps that process alive: started after the agent is up, started
again (with back-off) when it exits, which it does when its code changed on
disk; stopped on shutdown. ``LLMFLEET_COMMAND_SERVER=0`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

LOG_NAME = "command-server.log"
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 10.0


class CommandServerKeeper:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False

    @staticmethod
    def enabled() -> bool:
        return os.environ.get("LLMFLEET_COMMAND_SERVER", "1") != "0"

    def start(self) -> None:
        if self.enabled() and self._task is None:
            self._task = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        backoff = 1.0
        while not self._stopping:
            started = time.monotonic()
            with (self.home / LOG_NAME).open("ab") as log:
                self._process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "llmfleet.cli.server",
                    "--home",
                    str(self.home),
                    "--parent",
                    str(os.getpid()),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
            await self._process.wait()
            if self._stopping:
                return
            # A server that ran a while exited because its code changed: start the new
            # code at once. One that dies at start must not spin.
            if time.monotonic() - started > HEALTHY_AFTER_S:
                backoff = 1.0
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def stop(self) -> None:
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=3)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
