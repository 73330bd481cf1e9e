"""The upstream client (``upstream`` over ``connections``) against small scripted
HTTP servers: keep-alive, what is never reused, each timeout, body framings,
cancellation, and the errors failover acts on. Runs on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from llmfleet.errors import PermanentUpstreamError
from llmfleet.gateway.health import Failure
from llmfleet.gateway.pool import ConnectionPool
from llmfleet.gateway.upstream import AttemptError, UpstreamClient
from llmfleet.spec.model import Timeouts
from tests.gateway.conftest import free_port

TIMEOUTS = Timeouts(connect_s=0.3, first_byte_s=0.3, idle_s=0.2, total_s=5)
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def json_answer(body: bytes = b'{"ok": true}', *, status: str = "200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(),
        len(body),
        body,
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
END = b"0\r\n\r\n"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (Content-Length framed, as the client sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


class Upstream:
    """A scripted server: ``script`` runs once per accepted connection; it records
    the connections and whether the client closed one."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.client_closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer)
            if reader.at_eof():
                self.client_closed.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.client_closed.set()
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[[Script], Awaitable[tuple[Upstream, str]]]]:
    made: list[Upstream] = []

    async def make(script: Script) -> tuple[Upstream, str]:
        server = Upstream(script)
        made.append(server)
        return server, await server.start()

    yield make
    for server in made:
        if server.server is not None:
            server.server.close()


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    upstream_client = UpstreamClient(ConnectionPool(keepalive_s=30))
    yield upstream_client
    upstream_client.close()


def answering(*answers: bytes, then_close: bool = False) -> Script:
    """A script answering each request with the next answer, whichever connection it
    came on; it keeps a connection open until the client closes it (or ``then_close``)."""
    left = list(answers)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while left:
            await read_request(reader)
            writer.write(left.pop(0))
            await writer.drain()
            if then_close:
                return
        await reader.read()

    return script


async def test_keep_alive_reuses_one_connection(upstream, client) -> None:
    """Answers read to their end leave the connection for the next request."""
    server, url = await upstream(answering(*[json_answer(b'{"n": %d}' % i) for i in range(3)]))
    for i in range(3):
        assert await client.post_json(url, b"{}", TIMEOUTS) == b'{"n": %d}' % i
    assert server.connections == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked", "until-close"])
async def test_each_body_framing_is_read_whole(upstream, client, framing: str) -> None:
    """Content-Length, chunked (split across packets) and close-delimited bodies come
    back byte for byte; a close-delimited answer's connection is not reused."""
    body = b'{"text": "' + b"x" * 3000 + b'"}'

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            if framing == "content-length":
                writer.write(json_answer(body))
            elif framing == "chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for part in (body[:1000], body[1000:2500], body[2500:]):
                    writer.write(chunk(part))
                    await writer.drain()
                    await asyncio.sleep(0.01)
                writer.write(END)
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
                await writer.drain()
                return
            await writer.drain()

    server, url = await upstream(script)
    assert await client.post_json(url, b"{}", TIMEOUTS) == body
    assert await client.post_json(url, b"{}", TIMEOUTS) == body
    assert server.connections == (2 if framing == "until-close" else 1)


def sse(*payloads: bytes) -> bytes:
    return b"".join(b"data: %s\n\n" % p for p in payloads)


async def test_stream_events_arrive_as_they_come(upstream, client) -> None:
    """The first event is readable before the engine sends the rest; a stream read
    to [DONE] gives its connection back once the chunked terminator is in."""
    more = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(SSE_HEAD + chunk(sse(b'{"n": 1}')))
            await writer.drain()
            await more.wait()
            writer.write(chunk(sse(b'{"n": 2}', b"[DONE]")))
            await writer.drain()
            await asyncio.sleep(0.02)  # the terminator in a later packet
            writer.write(END)
            await writer.drain()
            more.clear()

    server, url = await upstream(script)
    for _ in range(2):
        stream = await client.open_stream(url, b"{}", TIMEOUTS)
        assert await stream.next_burst(1) == [b'{"n": 1}']
        more.set()
        assert await stream.next_burst(1) == [b'{"n": 2}']
        assert stream.finished
        await stream.close()
        await asyncio.sleep(0.1)
    assert server.connections == 1


async def test_a_stream_left_unread_is_cut_not_reused(upstream, client) -> None:
    """Closing a stream before [DONE] closes its connection (the engine sees the
    client leave); the next request gets a new connection."""
    server, url = await upstream(answering(SSE_HEAD + chunk(sse(b'{"n": 1}')), json_answer()))
    stream = await client.open_stream(url, b"{}", TIMEOUTS)
    assert await stream.next_burst(1) == [b'{"n": 1}']
    await stream.close()
    await asyncio.wait_for(server.client_closed.wait(), 1)
    assert await client.post_json(url, b"{}", TIMEOUTS) == b'{"ok": true}'
    assert server.connections == 2


async def test_connection_refused_is_a_connect_failure(client) -> None:
    """Nothing listening: the attempt fails as CONNECT (another replica may work)."""
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    with pytest.raises(AttemptError) as caught:
        await client.post_json(url, b"{}", TIMEOUTS)
    assert caught.value.failure == Failure.CONNECT
    assert "cannot connect" in str(caught.value)


async def test_connect_timeout_fires() -> None:
    """A server whose accept queue is full never completes the handshake: the attempt
    fails as TIMEOUT after connect_s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filling = []
    for _ in range(4):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        filling.append(sock)
    await asyncio.sleep(0.05)
    client = UpstreamClient()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(AttemptError) as caught:
            await client.post_json(
                f"http://127.0.0.1:{port}/x", b"{}", Timeouts(connect_s=0.3, first_byte_s=5)
            )
    finally:
        client.close()
        for sock in [*filling, listener]:
            sock.close()
    assert caught.value.failure == Failure.TIMEOUT
    assert "timed out" in str(caught.value)
    assert 0.25 < loop.time() - started < 1.0


@pytest.mark.parametrize("streamed", [True, False])
async def test_first_byte_timeout_fires_and_cuts_the_connection(upstream, client, streamed) -> None:
    """An engine that takes the request and never answers costs first_byte_s, then
    the attempt fails as TIMEOUT and the connection is closed."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    server, url = await upstream(script)
    with pytest.raises(AttemptError) as caught:
        if streamed:
            await client.open_stream(url, b"{}", TIMEOUTS)
        else:
            await client.post_json(url, b"{}", TIMEOUTS)
    assert caught.value.failure == Failure.TIMEOUT
    assert ("sent no response" if streamed else "did not answer") in str(caught.value)
    await asyncio.wait_for(server.client_closed.wait(), 1)


async def test_idle_timeout_between_events_fires(upstream, client) -> None:
    """A stream that stalls after its first event fails as TIMEOUT after idle_s."""
    server, url = await upstream(answering(SSE_HEAD + chunk(sse(b'{"n": 1}'))))
    stream = await client.open_stream(url, b"{}", TIMEOUTS)
    assert await stream.next_burst(TIMEOUTS.first_byte_s) == [b'{"n": 1}']
    with pytest.raises(AttemptError) as caught:
        await stream.next_burst(TIMEOUTS.idle_s)
    assert caught.value.failure == Failure.TIMEOUT
    assert "sent nothing for 0.2 s" in str(caught.value)
    await stream.close()
    await asyncio.wait_for(server.client_closed.wait(), 1)


@pytest.mark.parametrize("streamed", [True, False])
async def test_cancelling_the_request_closes_the_upstream(upstream, client, streamed) -> None:
    """The client of the gateway leaving (its task cancelled) closes the engine's
    connection at once, so the engine frees the slot."""
    taken = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if streamed:
            writer.write(SSE_HEAD + chunk(sse(b'{"n": 1}')))
            await writer.drain()
        taken.set()
        await reader.read()
        server.client_closed.set()

    server, url = await upstream(script)

    async def call() -> None:
        if streamed:
            stream = await client.open_stream(url, b"{}", TIMEOUTS)
            try:
                while True:
                    await stream.next_burst(5)
            finally:
                await stream.close()
        else:
            await client.post_json(url, b"{}", Timeouts(first_byte_s=5))

    task = asyncio.create_task(call())
    await asyncio.wait_for(taken.wait(), 1)
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.client_closed.wait(), 1)


async def test_a_connection_the_server_dropped_while_idle_is_retried(upstream, client) -> None:
    """The engine closing a keep-alive connection between requests (its idle timeout)
    costs nothing: the request goes out again on a new connection."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(json_answer())
        await writer.drain()
        await asyncio.sleep(0.05)  # then close, as if idle for too long

    server, url = await upstream(script)
    assert await client.post_json(url, b"{}", TIMEOUTS) == b'{"ok": true}'
    await asyncio.sleep(0.15)
    assert await client.post_json(url, b"{}", TIMEOUTS) == b'{"ok": true}'
    assert server.connections == 2


@pytest.mark.parametrize(
    ("status", "failure"),
    [("429 Too Many Requests", Failure.BUSY), ("503 Service Unavailable", Failure.SERVER_ERROR)],
)
async def test_busy_and_5xx_are_attempt_errors(upstream, client, status, failure) -> None:
    """429 and 5xx fail the attempt with what failover needs (retry elsewhere; eject
    on 5xx only); the error body was read, so the connection serves the next one."""
    server, url = await upstream(answering(json_answer(b'{"e": 1}', status=status), json_answer()))
    with pytest.raises(AttemptError) as caught:
        await client.open_stream(url, b"{}", TIMEOUTS)
    assert caught.value.failure == failure
    assert '{"e":1}' in str(caught.value)  # the engine's words, compacted
    assert await client.post_json(url, b"{}", TIMEOUTS) == b'{"ok": true}'
    assert server.connections == 1


async def test_4xx_is_permanent_with_the_engines_body(upstream, client) -> None:
    """The engine rejecting the request is not retried: its status and body pass on."""
    _, url = await upstream(answering(json_answer(b'{"error": "n"}', status="400 Bad Request")))
    with pytest.raises(PermanentUpstreamError) as caught:
        await client.post_json(url, b"{}", TIMEOUTS)
    assert caught.value.status == 400
    assert caught.value.body == b'{"error": "n"}'


@pytest.mark.parametrize("answer", [b"not http at all\r\n\r\n", SSE_HEAD + chunk(sse(b"{}"))])
async def test_garbage_or_an_early_close_is_a_connect_failure(upstream, client, answer) -> None:
    """Bytes that are not HTTP, or a stream that ends without [DONE], fail as CONNECT."""
    _, url = await upstream(answering(answer, then_close=True))
    with pytest.raises(AttemptError) as caught:
        stream = await client.open_stream(url, b"{}", TIMEOUTS)
        try:
            while not stream.finished:
                await stream.next_burst(1)
        finally:
            await stream.close()
    assert caught.value.failure == Failure.CONNECT


async def test_extra_header_lines_are_sent(upstream, client) -> None:
    """traceparent goes out as a header line of the request, before the blank line."""
    heads: list[bytes] = []

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        heads.append(head)
        writer.write(SSE_HEAD + chunk(sse(b"[DONE]")) + END)
        await writer.drain()
        await reader.read()

    _, url = await upstream(capture)
    stream = await client.open_stream(url, b"{}", TIMEOUTS, b"traceparent: 00-ab-cd-01\r\n")
    assert await stream.next_burst(1) == []
    await stream.close()
    assert b"\r\ntraceparent: 00-ab-cd-01\r\n" in heads[0]
    assert heads[0].endswith(b"\r\n\r\n") and heads[0].count(b"\r\n\r\n") == 1


def test_only_http_urls_are_targets() -> None:
    """An upstream URL the pool cannot speak to is refused with the URL named."""
    from llmfleet.gateway.pool import target_of

    target = target_of("http://engine:8080/v1/chat/completions?a=1")
    assert target.origin == ("engine", 8080)
    assert target.head.startswith(b"POST /v1/chat/completions?a=1 HTTP/1.1\r\nHost: engine:8080")
    with pytest.raises(ValueError, match="https://x"):
        target_of("https://x/v1")
    probe = target_of("http://engine:8080/health", "GET").head
    assert probe == b"GET /health HTTP/1.1\r\nHost: engine:8080\r\n"  # no JSON type


async def test_fetch_unix_gets_a_whole_answer_from_a_unix_socket(tmp_path) -> None:
    """The agent's socket: one GET, its status and body; no listener is a ConnectError."""
    from aiohttp import web

    from llmfleet.gateway.connections import ConnectError
    from llmfleet.gateway.pool import fetch_unix

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"query": dict(request.query)}, status=201)

    app = web.Application()
    app.router.add_get("/v1/environments/{name}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(tmp_path / "agent.sock")
    await web.UnixSite(runner, path).start()
    try:
        status, body = await fetch_unix(path, "/v1/environments/x?a=1", timeout_s=5)
        assert (status, json.loads(body)) == (201, {"query": {"a": "1"}})
    finally:
        await runner.cleanup()
    with pytest.raises(ConnectError):
        await fetch_unix(str(tmp_path / "nobody.sock"), "/", timeout_s=5)


async def test_closing_the_pool_closes_idle_connections(upstream) -> None:
    """Shutting the gateway down closes the connections it kept."""
    server, url = await upstream(answering(json_answer()))
    client = UpstreamClient()
    await client.post_json(url, b"{}", TIMEOUTS)
    client.close()
    await asyncio.wait_for(server.client_closed.wait(), 1)
