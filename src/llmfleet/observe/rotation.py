"""Capping a process's own log file: rotate by size, keep a bounded number of files.

The local agent starts each gateway with stdout and stderr appended to one file
(``.llmfleet/logs/gateways/ID.log``), and the gateway writes its request log
there, a line per request: unbounded, that file is how a busy gateway fills a
disk. The process itself rotates it, since it alone knows where its lines
end: before a write that would take the file past ``max_bytes``, the file is
renamed ``ID.log.1`` (older ones shift up, the one beyond ``files`` is
dropped), a new ``ID.log`` is opened (0600) and put on the same file
descriptors with ``dup2``, so every writer of the process (the request log,
``logging``, a traceback at exit) follows without knowing.

Several writers may each hold a ``LogRotator`` for the same descriptors: the
size is read from the descriptor (``fstat``), never counted, so whichever
rotates first, the others see the new file. Where the descriptor's file
cannot be named (not Linux, a pipe, a terminal, a deleted file) nothing
rotates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_BYTES_VAR = "LLMFLEET_LOG_MAX_BYTES"
FILES_VAR = "LLMFLEET_LOG_FILES"


@dataclass(frozen=True)
class LogLimits:
    """How large one log file may grow and how many are kept (the live one included)."""

    max_bytes: int = 50 * 1024 * 1024
    files: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogLimits | None:
        """The limits ``LLMFLEET_LOG_MAX_BYTES`` and ``LLMFLEET_LOG_FILES`` ask for
        (defaults 50 MiB and 5); None when ``LLMFLEET_LOG_MAX_BYTES=0`` turns the cap off."""
        default = cls()
        max_bytes = _whole_number(env, MAX_BYTES_VAR, default.max_bytes, minimum=0)
        files = _whole_number(env, FILES_VAR, default.files, minimum=1)
        return cls(max_bytes=max_bytes, files=files) if max_bytes else None


def _whole_number(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {raw!r}")
    return int(raw)


class LogRotator:
    """Keeps the file open on ``fds`` (all the same file, at ``path``) under ``limits``."""

    def __init__(self, path: Path, fds: tuple[int, ...], limits: LogLimits) -> None:
        self.path = path
        self.fds = fds
        self.limits = limits

    @classmethod
    def of_std_streams(cls, limits: LogLimits | None) -> LogRotator | None:
        """The rotator of this process's stderr file (and stdout, when it is the same
        file); None when the cap is off or stderr is not a file it can name."""
        if limits is None:
            return None
        path = _named_file(2)
        if path is None:
            return None
        same = os.fstat(2)
        fds = tuple(fd for fd in (1, 2) if _same_file(fd, same))
        return cls(path, fds, limits)

    def room(self) -> int:
        """Bytes the live file may still take."""
        return self.limits.max_bytes - os.fstat(self.fds[-1]).st_size

    def make_room(self, incoming: int) -> None:
        """Rotate first if ``incoming`` bytes would take a non-empty file past the cap."""
        room = self.room()
        if incoming > room and room < self.limits.max_bytes:
            self.rotate()

    def write_lines(self, raw: BinaryIO, lines: list[bytes]) -> None:
        """Write ``lines`` (without their newlines) through ``raw``, rotating between
        two lines whenever the next would not fit; a line is never split, and one
        longer than the cap gets a file of its own."""
        full, room = self.limits.max_bytes, self.room()
        data = b"\n".join(lines) + b"\n"
        if len(data) <= room:  # nearly always: one write, as without a cap
            raw.write(data)
            raw.flush()
            return
        start, size = 0, 0
        for index, line in enumerate(lines):
            need = len(line) + 1
            if size + need > room and (index > start or room < full):
                if index > start:
                    raw.write(b"\n".join(lines[start:index]) + b"\n")
                raw.flush()
                self.rotate()
                room, start, size = full, index, 0
            size += need
        raw.write(b"\n".join(lines[start:]) + b"\n")
        raw.flush()

    def rotate(self) -> None:
        """Shift ``path.1`` .. up by one, move the live file to ``path.1``, open a new
        one on the same descriptors. A rotation that fails (a full disk, a removed
        folder) leaves the writers on the file they had."""
        for stream in (sys.stdout, sys.stderr):  # their buffered text goes to the old file
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        try:
            self._shift()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            for target in self.fds:
                os.dup2(fd, target)
        finally:
            os.close(fd)

    def _shift(self) -> None:
        if self.limits.files == 1:
            self.path.unlink(missing_ok=True)
        else:
            self.shift_copies(keep_live=False)

    def shift_copies(self, *, keep_live: bool) -> None:
        """``path.N-1`` to ``path.N`` .. ``path.1`` to ``path.2`` (the one beyond
        ``files`` is overwritten), then ``path`` to ``path.1`` unless ``keep_live``."""
        path = self.path
        for index in range(self.limits.files - 1, 0, -1):
            if index == 1 and keep_live:
                break
            older = path if index == 1 else path.with_name(f"{path.name}.{index - 1}")
            if older.exists():
                older.replace(path.with_name(f"{path.name}.{index}"))


def _named_file(fd: int) -> Path | None:
    """The path of the regular file open on ``fd``, if it still has that name."""
    try:
        opened = os.fstat(fd)
        path = Path(f"/proc/self/fd/{fd}").readlink()
        named = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(opened.st_mode) or (named.st_dev, named.st_ino) != (
        opened.st_dev,
        opened.st_ino,
    ):
        return None
    return path


def _same_file(fd: int, other: os.stat_result) -> bool:
    try:
        mine = os.fstat(fd)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (other.st_dev, other.st_ino)


def stderr_rotator(env: Mapping[str, str]) -> LogRotator | None:
    """The rotator of this process's stderr file with the limits ``env`` sets; a setting
    that cannot be read is logged and the defaults apply (a log setting is no reason
    for a gateway not to start)."""
    try:
        limits = LogLimits.from_env(env)
    except ValueError as exc:
        logging.getLogger(__name__).warning("%s; using the default log limits", exc)
        limits = LogLimits()
    return LogRotator.of_std_streams(limits)


def cap_appended_file(path: Path, limits: LogLimits) -> bool:
    """Rotate a log file that another process appends to (an engine's output, which
    the agent opens with ``O_APPEND`` and hands to the engine): past ``max_bytes`` its
    content is copied to ``path.1`` (older ones shift up) and the file is truncated
    in place, so the writer's next line lands at its new start. True if it rotated.

    Lines the writer adds between the copy and the truncation are lost: a bounded
    disk is worth the few lines, and an engine's output is not the request log.
    Meant to be called now and then by whoever supervises the writer.
    """
    try:
        if path.stat().st_size <= limits.max_bytes:
            return False
        rotator = LogRotator(path, (), limits)
        if limits.files > 1:
            rotator.shift_copies(keep_live=True)
            shutil.copyfile(path, path.with_name(f"{path.name}.1"))
        os.truncate(path, 0)
    except OSError:
        return False
    return True
