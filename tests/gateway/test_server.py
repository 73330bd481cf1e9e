"""The gateway's HTTP/1.1 server with small handlers, spoken to over raw sockets:
keep-alive and pipelining, bodies in every framing and over the limit, streams,
disconnects, bad requests and shutdown. Runs on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from llmfleet.gateway.messages import Answer, Request, Response, StreamResponse, json_response
from llmfleet.gateway.server import Server

Handler = Callable[[Request], Awaitable[Answer]]


async def echo(request: Request) -> Answer:
    """The request as the handler saw it."""
    return json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode(),
            "oversize": request.oversize,
            "agent": request.headers.get("user-agent"),
        }
    )


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(handler: Handler = echo, **options: Any) -> Server:
        server = Server(handler, max_body_bytes=options.pop("max_body_bytes", 1000), **options)
        await server.start(host="127.0.0.1", port=0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close(grace_s=0.5)


class Client:
    """One raw connection that reads answers as a client would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def to(cls, server: Server) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", server.port))

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of the next final answer (an
        interim 1xx answer before it is read and dropped, as clients do)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 2)
        while head.startswith(b"HTTP/1.1 1"):
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 2)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            name.lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            body = await asyncio.wait_for(self.reader.read(), 2)
        return status, headers, body

    async def closed(self) -> bool:
        """Whether the server closed the connection (within a second)."""
        return await asyncio.wait_for(self.reader.read(), 1) == b""

    def close(self) -> None:
        self.writer.close()


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(serve) -> None:
    """Two requests in one write get two answers, in order, on one connection."""
    server = await serve()
    client = await Client.to(server)
    client.send(post("/a?x=1", b"first") + post("/b", b"second"))
    first, second = await client.answer(), await client.answer()
    assert json.loads(first[2])["body"] == "first"
    assert json.loads(first[2])["query"] == "x=1"
    assert json.loads(second[2])["path"] == "/b"
    client.send(post("/c", b"third"))
    assert json.loads((await client.answer())[2])["body"] == "third"
    assert first[1]["content-type"] == "application/json"
    assert "date" in first[1]
    client.close()


async def test_connection_close_and_http10_end_the_connection(serve) -> None:
    """A client asking to close (or speaking HTTP/1.0) gets its answer, then EOF."""
    server = await serve()
    for request in (
        post("/a", b"x", "Connection: close"),
        b"GET /h HTTP/1.0\r\n\r\n",
    ):
        client = await Client.to(server)
        client.send(request)
        status, headers, _ = await client.answer()
        assert status == 200
        assert headers["connection"] == "close"
        assert await client.closed()
        client.close()


async def test_chunked_bodies_and_expect_continue(serve) -> None:
    """A chunked request body arrives whole; Expect: 100-continue gets its 100 first."""
    server = await serve()
    client = await Client.to(server)
    client.send(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    client.send(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
    assert json.loads((await client.answer())[2])["body"] == "abcdefg"
    client.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.send(b"hi")
    assert json.loads((await client.answer())[2])["body"] == "hi"
    client.close()


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_limit_is_answered_unread(serve, chunked) -> None:
    """Over max_body_bytes the handler gets the request without its body (and its
    size); the client reads the answer while the rest is drained; then EOF."""
    server = await serve(max_body_bytes=1000)
    client = await Client.to(server)
    if chunked:
        client.send(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        client.send(b"".join(b"200\r\n" + b"y" * 512 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n")
    else:
        client.send(post("/a", b"y" * 5000))
    status, _, body = await client.answer()
    seen = json.loads(body)
    assert status == 200
    assert seen["body"] == ""
    assert seen["oversize"] == (1024 if chunked else 5000)
    assert await client.closed()
    client.close()


async def test_expect_continue_over_the_limit_gets_no_100(serve) -> None:
    """A client that waits for 100 before sending a too-large body is answered at once
    and the connection closes (it will send nothing more)."""
    server = await serve(max_body_bytes=10)
    client = await Client.to(server)
    client.send(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n"
    )
    status, _, body = await client.answer()
    assert status == 200
    assert json.loads(body)["oversize"] == 50
    assert await client.closed()
    client.close()


@pytest.mark.parametrize(
    "request_bytes",
    [b"NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"],
)
async def test_bad_requests_get_an_error_and_the_connection_closes(serve, request_bytes) -> None:
    """Bytes that are not HTTP get 400; too many headers 431; both as OpenAI JSON."""
    server = await serve()
    client = await Client.to(server)
    client.send(request_bytes)
    status, _, body = await client.answer()
    assert status in (400, 431)
    assert "error" in json.loads(body)
    assert await client.closed()
    client.close()


async def test_head_gets_the_headers_only(serve) -> None:
    """HEAD is answered like GET without the body (Content-Length as GET's)."""
    server = await serve()
    client = await Client.to(server)
    client.send(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: " in head
    client.send(post("/a", b"next"))
    assert json.loads((await client.answer())[2])["body"] == "next"
    client.close()


async def stream_three(request: Request) -> Answer:
    response = StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
        await response.write(part)
    await response.write_eof()
    return response


async def test_streams_are_chunked_or_unframed_for_http10(serve) -> None:
    """A stream goes out chunked on HTTP/1.1 (the connection stays) and unframed on
    HTTP/1.0, ending with the connection."""
    server = await serve(stream_three)
    client = await Client.to(server)
    client.send(post("/s", b""))
    status, headers, body = await client.answer()
    assert (status, headers["transfer-encoding"]) == (200, "chunked")
    assert body == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    client.send(post("/s", b""))
    assert (await client.answer())[2].endswith(b"[DONE]\n\n")
    client.close()
    old = await Client.to(server)
    old.send(b"POST /s HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    status, headers, body = await old.answer()
    assert "transfer-encoding" not in headers
    assert body == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    old.close()


async def test_a_client_leaving_cancels_its_handler(serve) -> None:
    """The handler of a client that disconnects is cancelled (so its upstream work
    stops); the server serves the next client as before."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(request: Request) -> Answer:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Response(b"late")

    server = await serve(slow)
    client = await Client.to(server)
    client.send(post("/a", b""))
    await asyncio.wait_for(started.wait(), 2)
    client.close()
    await asyncio.wait_for(cancelled.wait(), 2)
    assert not server.connections or all(c.closed for c in server.connections)


async def test_a_failing_handler_is_500_json_and_the_connection_lives(serve) -> None:
    """An exception in a handler answers 500 as OpenAI JSON; the next request works."""
    calls = []

    async def flaky(request: Request) -> Answer:
        calls.append(request.path)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return Response(b"{}")

    server = await serve(flaky)
    client = await Client.to(server)
    client.send(post("/a", b""))
    status, _, body = await client.answer()
    assert status == 500
    assert json.loads(body)["error"]["code"] == "internal_error"
    client.send(post("/b", b""))
    assert (await client.answer())[0] == 200
    client.close()


async def test_idle_connections_close_after_keepalive_s(serve) -> None:
    """A connection with nothing to do is closed after keepalive_s."""
    server = await serve(keepalive_s=0.1)
    client = await Client.to(server)
    client.send(post("/a", b""))
    await client.answer()
    assert await client.closed()
    client.close()


async def test_close_lets_the_answer_in_progress_finish(serve) -> None:
    """Shutting down stops listening and waits (up to grace_s) for answers under way."""
    release = asyncio.Event()

    async def waiting(request: Request) -> Answer:
        await release.wait()
        return Response(b'{"done": 1}')

    server = await serve(waiting)
    port = server.port
    client = await Client.to(server)
    client.send(post("/a", b""))
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(server.close(grace_s=2))
    await asyncio.sleep(0.05)
    release.set()
    status, _headers, body = await client.answer()
    assert (status, body) == (200, b'{"done": 1}')
    await closing
    assert await client.closed()
    client.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
