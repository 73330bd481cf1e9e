"""The agent's table on disk (``agent-state.json``): what a restarted agent adopts.

A restarted agent starts every argv listed here, so the file is read only when it is
this user's alone (``llmfleet.private_files``: no link, no other owner, not writable by
others) and written 0600, through a temporary file renamed over it, so a reader never
sees half a table. The body is a JSON object; callers own its keys.

A table that cannot be written (disk full, read-only, the folder deleted) must not
stop supervision: ``TableKeeper`` logs it, keeps the problem for ``status`` and
tries again until a save succeeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmfleet.backends.local.layout import STATE_NAME
from llmfleet.private_files import open_private

log = logging.getLogger(__name__)


def read_table(home: Path) -> dict[str, Any] | None:
    """The saved table; None when there is none or it is not a JSON object (a table
    cut short is forgotten, as if the agent had never run). Raises
    ``UnsafePathError`` for a table another user could have written."""
    path = home / STATE_NAME
    try:
        fd = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read()
    try:
        body = json.loads(raw)
    except ValueError:
        log.error("%s is not JSON; starting with an empty table", path)
        return None
    return body if isinstance(body, dict) else None


def write_table(home: Path, body: dict[str, Any]) -> None:
    path = home / STATE_NAME
    tmp = path.with_suffix(".tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as handle:
        json.dump(body, handle)
    tmp.replace(path)


TABLE_RETRY_S = 1.0
Writer = Callable[[Path, dict[str, Any]], None]


class TableKeeper:
    """Saves the table ``body()`` describes; a failed save is a ``problem`` to report,
    logged once and retried every ``retry_s`` (loop time) until one succeeds, never
    an exception for the caller (a supervisor task that raised it died, leaving its
    replica in back-off with a dead pid)."""

    def __init__(
        self,
        home: Path,
        *,
        body: Callable[[], dict[str, Any]],
        retry_s: float = TABLE_RETRY_S,
        write: Writer = write_table,
    ) -> None:
        self.path = home / STATE_NAME
        self.problem: str | None = None
        self._home = home
        self._body = body
        self._retry_s = retry_s
        self._write = write
        self._retrying: asyncio.Task[None] | None = None

    def save(self) -> str | None:
        """Write the table now; the problem when it could not be written, else None."""
        try:
            self._write(self._home, self._body())
        except OSError as exc:
            problem = f"cannot save {self.path}: {exc.strerror or exc}"
            if problem != self.problem:
                log.error("%s; supervision goes on, retrying every %.0f s", problem, self._retry_s)
            self.problem = problem
            self._retry_later()
            return problem
        if self.problem is not None:
            log.warning("saved %s again", self.path)
            self.problem = None
        return None

    def _retry_later(self) -> None:
        if self._retrying is not None and not self._retrying.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next change retries
            return
        self._retrying = loop.create_task(self._retry())

    async def _retry(self) -> None:
        while self.problem is not None:
            await asyncio.sleep(self._retry_s)
            self.save()

    def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
