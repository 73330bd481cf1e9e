"""Folders and files that only this user can change: the runtime's home and what is in it.

The local runtime runs as whoever runs ``llmfleet``, often root, and acts on what it
finds in its home (``.llmfleet``): it starts every argv in the agent's table, sends
specs and keys to the agent's socket, appends to logs, reads the state database. So,
as ssh does with ``~/.ssh``, whatever there another user could have written is
refused, with the path, its owner or mode and the fix:

- a folder must be a real folder (not a link), owned by this user, not writable by
  group or others; one only readable by others (0755, as older llmfleet made them) is
  tightened to 0700, since nobody else could have changed what is in it;
- a file is opened with ``O_NOFOLLOW`` (a link is an error, never followed), must be
  this user's and not writable by group or others; 0644 is tightened to 0600;
- what the runtime creates is 0700 (folders) and 0600 (files) whatever the umask.

A file planted in a folder that was open to others is still caught, by its owner.
These checks are at the I/O edge: every function here touches the file system, and
refusals are ``UnsafePathError``.
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import stat
import struct
from contextlib import suppress
from pathlib import Path

from llmfleet.errors import UnsafePathError

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
OWNER_BITS = 0o700
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
OTHERS_ANY = 0o077
PEER_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def private_folder(path: Path, *, create: bool = True) -> bool:
    """Make sure ``path`` is a folder only this user can use (created 0700 when
    ``create``); False when it does not exist and was not created."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with suppress(FileExistsError):
            path.mkdir(mode=PRIVATE_FOLDER)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _refusal_for(path, exc, kind="folder") from exc
    try:
        _make_private(path, fd, kind="folder")
    finally:
        os.close(fd)
    return True


def open_private(path: Path, flags: int) -> int:
    """``os.open`` for a file in a private folder: never through a link, created 0600,
    refused when another user could have written it. Returns the descriptor."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            raise _refusal_for(path, exc, kind="file") from exc
        raise
    try:
        _make_private(path, fd, kind="file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_private(path: Path) -> bool:
    """Check a file the runtime does not open itself (a socket it connects to, the
    files SQLite opens); False when it does not exist."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise _link_refusal(path)
    _refuse_foreign(path, info, kind="file")
    if stat.S_IMODE(info.st_mode) & OTHERS_ANY and not stat.S_ISSOCK(info.st_mode):
        path.chmod(stat.S_IMODE(info.st_mode) & OWNER_BITS)
    return True


def refuse_foreign_peer(conn: socket.socket, path: Path) -> None:
    """Refuse a unix socket served by another user's process. The socket file may be
    ours while the process behind it is not (bound by them, the file chowned after);
    the kernel's peer credentials cannot be planted."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER_CREDENTIALS.size)
    pid, uid, _gid = PEER_CREDENTIALS.unpack(raw)
    me = os.geteuid()
    if uid != me:
        raise UnsafePathError(
            f"{path} is served by process {pid} of {user_name(uid)}, not by a process of "
            f"{user_name(me)}: llmfleet sends it nothing",
            hint=f"stop that process and remove {path}; `llmfleet apply` starts your own agent",
        )


def user_name(uid: int) -> str:
    """``name (uid N)``, or ``uid N`` for a uid with no account."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _login(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _make_private(path: Path, fd: int, *, kind: str) -> None:
    info = os.fstat(fd)
    wanted = stat.S_ISDIR if kind == "folder" else stat.S_ISREG
    if not wanted(info.st_mode):
        raise UnsafePathError(
            f"{path} is not a {'folder' if kind == 'folder' else 'regular file'}",
            hint=f"move it away; llmfleet makes its own {kind} there",
        )
    _refuse_foreign(path, info, kind=kind)
    mode = stat.S_IMODE(info.st_mode)
    if mode & OTHERS_ANY:  # readable by others only: ours, and nobody else could change it
        os.fchmod(fd, mode & OWNER_BITS)


def _refuse_foreign(path: Path, info: os.stat_result, *, kind: str) -> None:
    me = os.geteuid()
    if info.st_uid != me:
        raise UnsafePathError(
            f"{path} is owned by {user_name(info.st_uid)}, not by {user_name(me)}: "
            "another user could have written it, and llmfleet would act on it",
            hint=f"if you trust what is in it, `chown -R {_login(me)} {path}`; otherwise remove it",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & OTHERS_WRITE:
        who = "group and others" if mode & OTHERS_WRITE == OTHERS_WRITE else (
            "group" if mode & stat.S_IWGRP else "others")  # fmt: skip
        private = PRIVATE_FOLDER if kind == "folder" else PRIVATE_FILE
        raise UnsafePathError(
            f"{path} is writable by {who} (mode {mode:o}): another user could have "
            "changed it, and llmfleet would act on it",
            hint=f"if you trust what is in it, `chmod {private:o} {path}`; otherwise remove it",
        )


def _refusal_for(path: Path, exc: OSError, *, kind: str) -> UnsafePathError:
    """Why ``os.open`` with ``O_NOFOLLOW`` failed, in the user's words."""
    with suppress(OSError):
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return _link_refusal(path)
    if exc.errno == errno.ENOTDIR:
        return UnsafePathError(
            f"{path} is not a {kind}", hint=f"move it away; llmfleet makes its own {kind} there"
        )
    return UnsafePathError(f"cannot open {path}: {exc.strerror}", hint="check its permissions")


def _link_refusal(path: Path) -> UnsafePathError:
    target = "?"
    with suppress(OSError):
        target = str(path.readlink())
    return UnsafePathError(
        f"{path} is a symbolic link (to {target}); llmfleet does not follow links in its "
        "own folders",
        hint=f"remove the link (`rm {path}`); llmfleet makes its own file there",
    )
