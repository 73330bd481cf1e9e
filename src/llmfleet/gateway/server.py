"""The gateway's HTTP/1.1 server: listens, counts connections, closes with grace.

Each connection is an ``HttpProtocol`` (``protocol``, where what the server does
for one client is described); the bytes of answers' heads are ``framing``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from llmfleet.gateway.errors import ApiError
from llmfleet.gateway.intake import BodyBudget, HeadCheck, Limits, too_many_connections
from llmfleet.gateway.messages import Request, Response, StreamResponse
from llmfleet.gateway.protocol import HttpProtocol

Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


class Server:
    """Listens and answers every request with ``handler``.

    ``limits`` bounds what one client may take (``intake.Limits``); ``check_head``,
    when given, judges each request with a body from its head, before the body is
    read (``intake.Verdict``)."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body_bytes: int,
        keepalive_s: float = 75.0,
        limits: Limits | None = None,
        check_head: HeadCheck | None = None,
    ) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_s = keepalive_s
        self.limits = limits or Limits()
        self.check_head = check_head
        self.bodies = BodyBudget(self.limits.bodies_bytes)
        self.connections: set[HttpProtocol] = set()
        self.per_address: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._all_gone: asyncio.Event | None = None
        self._date = (0, b"")

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(
        self, *, sock: socket.socket | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Listen on ``sock`` (bound already) or on ``host``:``port`` (0: any free port)."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(lambda: HttpProtocol(self), sock=sock)
        else:
            self._server = await loop.create_server(
                lambda: HttpProtocol(self), host, port, backlog=1024
            )

    async def close(self, *, grace_s: float = 10.0) -> None:
        """Stop listening, let answers in progress finish for up to ``grace_s``, then
        cut what is left."""
        if self._server is not None:
            self._server.close()
        self._all_gone = asyncio.Event()
        for conn in list(self.connections):
            conn.shut_down()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), grace_s)
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def admit(self, conn: HttpProtocol) -> ApiError | None:
        """Count a new connection; the error to answer when its address has too many."""
        limit = self.limits.connections_per_address
        if limit and conn.transport is not None:
            peer = conn.transport.get_extra_info("peername")
            address = peer[0] if isinstance(peer, tuple) and peer else None
            if isinstance(address, str):
                count = self.per_address.get(address, 0)
                if count >= limit:
                    return too_many_connections(address, limit)
                self.per_address[address] = count + 1
                conn.address = address
        self.connections.add(conn)
        return None

    def forget(self, conn: HttpProtocol) -> None:
        """``conn`` closed."""
        self.connections.discard(conn)
        address = conn.address
        if address is not None:
            conn.address = None
            left = self.per_address.get(address, 0) - 1
            if left > 0:
                self.per_address[address] = left
            else:
                self.per_address.pop(address, None)
        if self._all_gone is not None and not self.connections:
            self._all_gone.set()

    def date_line(self) -> bytes:
        """The Date header, formatted once a second."""
        now = int(time.time())
        if now != self._date[0]:
            self._date = (now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode())
        return self._date[1]
