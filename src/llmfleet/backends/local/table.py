"""The agent's table on disk (``agent-state.json``): what a restarted agent adopts.

A restarted agent starts every argv listed here, so the file is read only when it is
this user's alone (``llmfleet.private_files``: no link, no other owner, not writable by
others) and written 0600, through a temporary file renamed over it, so a reader never
sees half a table. The body is a JSON object; callers own its keys.
"""

from __future__ import annotations

import json
import logging
import os
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
