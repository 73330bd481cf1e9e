"""Replicas' output as the agent left it on disk, read without asking the agent.

Each replica writes to ``.llmfleet/logs/ENV/ENV-SERVICE-SLOT-HEX.log`` and each
gateway to ``.llmfleet/logs/gateways/gateway-ENV.log``; the files stay when the
process stops, and the agent ends them with how it ended (``managed.stop_words``,
``exit_words``). So ``llmfleet logs`` shows the output of a replica that crashed,
that a failed apply stopped, or that ran before ``down``, when the agent no longer
knows it or no longer runs. Files are opened as the agent's own are
(``private_files.open_private``): never through a link, never another user's.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from llmfleet.backends.local.layout import LOGS_FOLDER
from llmfleet.private_files import open_private

SLOT_AND_HEX = re.compile(r"(?P<slot>\d+)-[0-9a-f]+")
"""What follows ``ENV-SERVICE-`` in a replica id (``apply.prepare``): service ``chat``
does not match the files of ``chat-2``."""
TAIL_BYTES_PER_LINE = 640


@dataclass(frozen=True, slots=True)
class LogFile:
    """One process's log on disk."""

    replica_id: str
    path: Path
    slot: int
    modified: float
    """seconds since the epoch of its last write"""


def service_logs(home: Path, environment: str, service: str) -> list[LogFile]:
    """Every replica log of ``service`` in ``environment``, newest first."""
    prefix = f"{environment}-{service}-"
    found = []
    for path in _logs_in(home / LOGS_FOLDER / environment, prefix):
        match = SLOT_AND_HEX.fullmatch(path.name[len(prefix) : -len(".log")])
        if match is not None:
            found.append(_log_file(path, int(match["slot"])))
    return sorted(found, key=lambda f: f.modified, reverse=True)


def gateway_log(home: Path, environment: str) -> LogFile | None:
    path = home / LOGS_FOLDER / "gateways" / f"gateway-{environment}.log"
    return _log_file(path, 0) if path.is_file() else None


def newest_per_slot(logs: list[LogFile]) -> list[LogFile]:
    """The last replica of each slot: what ran there most recently."""
    seen: dict[int, LogFile] = {}
    for log in logs:
        if log.slot not in seen or log.modified > seen[log.slot].modified:
            seen[log.slot] = log
    return [seen[slot] for slot in sorted(seen)]


def read_tail(path: Path, *, lines: int) -> list[str]:
    """The last ``lines`` lines of a log (empty when there is none)."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as handle:
        start = max(0, handle.seek(0, os.SEEK_END) - TAIL_BYTES_PER_LINE * max(lines, 1))
        handle.seek(start)
        read = handle.read().splitlines()
        tail: deque[bytes] = deque(read[1:] if start else read, maxlen=lines)  # not half a line
    return [line.decode(errors="replace") for line in tail]


def _logs_in(folder: Path, prefix: str) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.name.startswith(prefix) and p.suffix == ".log"]
    except FileNotFoundError:
        return []


def _log_file(path: Path, slot: int) -> LogFile:
    return LogFile(path.name[: -len(".log")], path, slot, path.stat().st_mtime)
