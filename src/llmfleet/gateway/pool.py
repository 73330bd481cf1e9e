"""Keep-alive connections to the engines, per origin: ``ConnectionPool``.

``send`` writes one request on an idle connection of the origin (or a new one)
and returns that ``Connection`` once the answer's status line and headers are
in; the caller reads the body from it and hands it back with ``release`` (or
``release_when_complete`` for a stream read to its last event: the pool waits
for the few bytes after it, nobody else does). A reused connection that the
server closed while it was idle (its keep-alive timeout raced our request) is
retried once on a new connection, as nothing of an answer arrived.

``fetch`` is a whole small GET (the prober's ``/health`` and ``/metrics``) on
the same pooled connections; ``fetch_unix`` one over a Unix socket (the local
agent). The gateway needs no other HTTP client.

Every request to an origin whose API key the pool was given
(``set_credentials``: the keys the local agent made for its replicas) carries
it as ``Authorization: Bearer``, requests and probes alike, because this is
the one place they all pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from llmfleet.gateway.connections import (
    END,
    HEADERS,
    BrokenConnectionError,
    ConnectError,
    Connection,
    ConnectTimeoutError,
)

Origin = tuple[str, int]
"""(host, port) of a server: what keep-alive connections and API keys belong to."""


@dataclass(frozen=True)
class Target:
    """Where a URL's requests go, and the fixed part of their head."""

    host: str
    port: int
    head: bytes
    """``METHOD path HTTP/1.1`` with Host (and Content-Type for a POST); Content-Length
    follows."""

    @property
    def origin(self) -> Origin:
        return (self.host, self.port)


@lru_cache(maxsize=4096)
def target_of(url: str, method: str = "POST") -> Target:
    """The target of an ``http://`` URL; replica URLs are few, so each is parsed once.
    A POST carries JSON."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the upstream URL {url!r} is not http://host[:port]/path")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host = parts.netloc.rpartition("@")[2]  # never credentials in the Host header
    content_type = "Content-Type: application/json\r\n" if method == "POST" else ""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{content_type}".encode("latin-1")
    return Target(host=parts.hostname, port=port, head=head)


class ConnectionPool:
    """Idle keep-alive connections per origin, newest first; unbounded, like the
    engines' own slot counts are the bound on what is in flight."""

    def __init__(self, *, keepalive_s: float = 30.0) -> None:
        self.keepalive_s = keepalive_s
        self._idle: dict[Origin, list[Connection]] = {}
        self._finishing: set[Connection] = set()
        """connections waiting for the end of an answer nobody reads any more."""
        self._closed = False
        self._credentials: dict[Origin, bytes] = {}
        """origin -> its ``Authorization`` header line."""

    def set_credentials(self, keys: Mapping[Origin, str]) -> None:
        """The API key each origin wants, replacing the ones set before.

        Raises ``ValueError`` for a key that could not travel in a header line
        (a CR or LF in it would let it write headers of its own)."""
        lines = {}
        for origin, key in keys.items():
            if not key or any(not 0x21 <= ord(char) <= 0x7E for char in key):
                raise ValueError(f"the API key of {origin[0]}:{origin[1]} is not a header token")
            lines[origin] = f"Authorization: Bearer {key}\r\n".encode("ascii")
        self._credentials = lines

    async def send(
        self,
        target: Target,
        body: bytes,
        *,
        deadline: float,
        connect_s: float,
        head: bytes = b"",
        until: int = HEADERS,
    ) -> Connection:
        """Send ``body`` to ``target`` and return the connection once the answer's
        headers are in (and more: ``until``); the caller reads the body, then
        ``release``s or ``close``s it. ``head`` holds extra header lines, each ending
        in CRLF, made by the gateway itself (never a client's raw bytes).

        Raises ``ConnectError``, ``ConnectTimeoutError``, ``BrokenConnectionError`` or
        ``TimeoutError`` (``connect_s`` to open a connection, ``deadline`` for all of it).
        """
        auth = self._credentials.get(target.origin) if self._credentials else None
        if auth is not None:
            head = target.head + auth + head
        elif head:
            head = target.head + head
        else:
            head = target.head
        conn = self._take_idle(target.origin)
        may_retry = conn is not None
        if conn is None:
            conn = await self._connect(target, deadline=deadline, connect_s=connect_s)
        while True:
            try:
                conn.send_request(head, body)
                await conn.wait_answer(deadline, until=until)
                return conn
            except BrokenConnectionError:
                conn.close()
                if not may_retry or conn.received:
                    raise
                # a reused connection closed before any answer: the server had let it go
                # while idle and never saw the request, so a new connection may carry it
                may_retry = False
                conn = await self._connect(target, deadline=deadline, connect_s=connect_s)
            except BaseException:
                conn.close()
                raise

    async def fetch(self, url: str, *, timeout_s: float) -> tuple[int, bytes]:
        """GET ``url`` whole: its status and body, all within ``timeout_s``.

        Raises what ``send`` raises."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        target = target_of(url, "GET")
        conn = await self.send(target, b"", deadline=deadline, connect_s=timeout_s, until=END)
        try:
            body = await conn.read_to_end(deadline)
        except BaseException:
            conn.close()
            raise
        self.release(conn)
        return conn.status, body

    def release_when_complete(self, conn: Connection, *, within_s: float) -> None:
        """``release`` once the rest of the answer (a few bytes the caller does not need, such
        as the chunked terminator after an SSE ``[DONE]``) is in, without anyone waiting
        for it; cut the connection if that takes longer than ``within_s``."""
        if self._closed:
            conn.close()
            return
        self._finishing.add(conn)
        conn.when_ended(self._finished, within_s=within_s)

    def _finished(self, conn: Connection) -> None:
        self._finishing.discard(conn)
        self.release(conn)

    def release(self, conn: Connection) -> None:
        """Keep ``conn`` for the next request to its origin if it may carry one, else close it."""
        conn.end_exchange()
        if self._closed or not conn.reusable:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle = self._idle.get(conn.origin)
        if idle is None:  # not setdefault: that builds a list on every release
            idle = self._idle[conn.origin] = []
        idle.append(conn)

    def _take_idle(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_ok = asyncio.get_running_loop().time() - self.keepalive_s
        while idle:
            conn = idle.pop()
            if conn.reusable and conn.idle_since >= oldest_ok:
                return conn
            conn.close()
        return None

    async def _connect(self, target: Target, *, deadline: float, connect_s: float) -> Connection:
        loop = asyncio.get_running_loop()
        connect_by = min(deadline, loop.time() + connect_s)
        try:
            async with asyncio.timeout_at(connect_by):
                transport, conn = await loop.create_connection(
                    lambda: Connection(loop), target.host, target.port
                )
        except TimeoutError as exc:  # before OSError: TimeoutError is one
            if connect_by < deadline:
                raise ConnectTimeoutError(f"no connection within {connect_s:g} s") from exc
            raise
        except OSError as exc:
            raise ConnectError(str(exc) or repr(exc)) from exc
        conn.transport = transport  # uvloop may not have called connection_made yet
        conn.origin = target.origin
        return conn

    def close(self) -> None:
        """Close every idle connection; later releases close theirs too."""
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._finishing):
            conn.close()  # which calls ``_finished``: it leaves the set


async def fetch_unix(socket_path: str, path: str, *, timeout_s: float) -> tuple[int, bytes]:
    """GET ``path`` over the Unix socket at ``socket_path`` on a connection of its own:
    the status and the body, within ``timeout_s``.

    Raises ``ConnectError`` (no such socket, nobody listening), ``BrokenConnectionError``
    or ``TimeoutError``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        async with asyncio.timeout_at(deadline):
            transport, conn = await loop.create_unix_connection(
                lambda: Connection(loop), socket_path
            )
    except TimeoutError:  # before OSError: TimeoutError is one
        raise
    except OSError as exc:
        raise ConnectError(str(exc) or repr(exc)) from exc
    conn.transport = transport
    try:
        conn.send_request(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n".encode("latin-1"), b"")
        await conn.wait_answer(deadline, until=END)
        return conn.status, await conn.read_to_end(deadline)
    finally:
        conn.close()
