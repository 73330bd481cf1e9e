"""The gateway's HTTP server against clients that hold it: a request that never ends
(slowloris), too many connections from one address, bodies that would fill its
memory, a head the gateway can refuse before the body; and a client that half-closes
after its request, which is owed an answer. Raw sockets; runs on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from llmfleet.gateway import errors
from llmfleet.gateway.intake import Deferred, Head, Limits, Verdict
from llmfleet.gateway.messages import Answer, Request, Response
from llmfleet.gateway.server import Server
from tests.gateway.test_server import Client, echo, post

FAST = Limits(header_timeout_s=0.3, body_idle_s=0.3, body_timeout_s=1.0)
"""Short read limits: each timeout test ends in about a second."""


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(handler: Callable[[Request], Awaitable[Answer]] = echo, **kw: Any) -> Server:
        server = Server(handler, max_body_bytes=kw.pop("max_body_bytes", 10_000), **kw)
        await server.start(host="127.0.0.1", port=0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close(grace_s=0.5)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Server], Awaitable[Client]]]:
    """``await connect(server)``: a raw client, closed at the end even if the test fails."""
    clients: list[Client] = []

    async def open_to(server: Server) -> Client:
        clients.append(await Client.to(server))
        return clients[-1]

    yield open_to
    for client in clients:
        client.close()
        with contextlib.suppress(OSError):
            await client.writer.wait_closed()


async def settled(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Wait until ``condition`` holds, as the server reaches it."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the server's counts have no event to wait on
            await asyncio.sleep(0.01)


async def answer_and_close(client: Client) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the one answer before the server closes."""
    status, headers, body = await client.answer()
    assert headers.get("connection") == "close"
    assert await client.closed()
    client.close()
    return status, json.loads(body)


# -- slowloris


@pytest.mark.parametrize(
    "sent",
    [b"P", b"POST /a HTTP/1.1\r\n", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Le"],
    ids=["one-byte", "request-line", "half-a-header"],
)
async def test_a_request_head_that_stops_coming_is_408_and_closed(
    serve, connect, sent: bytes
) -> None:
    """One byte, a request line, part of the headers, then nothing: 408 at
    header_timeout_s and the connection closes (it used to stay open forever)."""
    server = await serve(limits=FAST)
    client = await connect(server)
    client.send(sent)
    status, body = await answer_and_close(client)
    assert (status, body["error"]["code"]) == (408, "request_timeout")
    await settled(lambda: not server.connections)  # the server closes at the client's FIN


async def test_headers_dribbled_a_byte_at_a_time_are_cut_at_the_header_timeout(
    serve, connect
) -> None:
    """Each byte is progress, but the whole head has header_timeout_s from its first
    byte: a head sent a byte every 10 ms (6 s in all) is cut at about 0.3 s."""
    server = await serve(limits=FAST)
    client = await connect(server)
    head = post("/a", b"x", *(f"X-Pad-{i}: {'y' * 20}" for i in range(20)))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def dribble() -> None:
        for byte in head:
            client.send(bytes([byte]))
            await asyncio.sleep(0.01)

    dribbling = asyncio.create_task(dribble())
    try:
        status, body = await answer_and_close(client)
    finally:
        dribbling.cancel()
    assert status == 408 and "headers" in body["error"]["message"]
    assert 0.25 < loop.time() - started < 1.0


async def test_a_body_shorter_than_its_content_length_is_408(serve, connect) -> None:
    """10 of 100 declared bytes, then nothing: 408 after body_idle_s, closed."""
    server = await serve(limits=FAST)
    client = await connect(server)
    client.send(post("/a", b"x" * 100)[:-90])
    status, body = await answer_and_close(client)
    assert (status, body["error"]["code"]) == (408, "request_timeout")
    assert "no progress" in body["error"]["message"]


async def test_a_body_that_trickles_is_cut_at_the_body_timeout(serve, connect) -> None:
    """A byte every 0.1 s is progress (the idle limit never fires), but the body must
    end within body_timeout_s of the headers."""
    server = await serve(limits=FAST)
    client = await connect(server)
    loop = asyncio.get_running_loop()
    client.send(post("/a", b"x" * 1000)[:-1000])
    started = loop.time()

    async def trickle() -> None:
        while True:
            await asyncio.sleep(0.1)
            client.send(b"x")

    trickling = asyncio.create_task(trickle())
    try:
        status, body = await answer_and_close(client)
    finally:
        trickling.cancel()
    assert status == 408 and "not complete within" in body["error"]["message"]
    assert 0.9 < loop.time() - started < 1.6


async def test_slow_requests_within_the_limits_are_answered(serve, connect) -> None:
    """A head and a body that arrive in parts, each within its limit, are answered; a
    keep-alive connection idle between requests (longer than header_timeout_s) is not
    a stalled request."""
    server = await serve(limits=FAST)
    client = await connect(server)
    request = post("/a", b"0123456789")
    for part in (request[:5], request[5:30], request[30:-5], request[-5:]):
        client.send(part)
        await asyncio.sleep(0.1)
    status, _, body = await client.answer()
    assert (status, json.loads(body)["body"]) == (200, "0123456789")
    await asyncio.sleep(0.5)
    client.send(post("/b", b"again"))
    assert json.loads((await client.answer())[2])["body"] == "again"
    client.close()


# -- connections per address


async def test_connections_from_one_address_are_limited(serve, connect) -> None:
    """Past connections_per_address the new connection gets 429 and is closed at once;
    the ones already open keep working, and a closed one frees its place."""
    server = await serve(limits=Limits(connections_per_address=2))
    first, second = await connect(server), await connect(server)
    third = await connect(server)
    status, body = await answer_and_close(third)
    assert (status, body["error"]["code"]) == (429, "too_many_connections")
    assert "127.0.0.1" in body["error"]["message"]
    first.send(post("/a", b"still"))
    assert json.loads((await first.answer())[2])["body"] == "still"
    first.close()
    await settled(lambda: len(server.connections) == 1)
    fourth = await connect(server)
    fourth.send(post("/a", b"room"))
    assert (await fourth.answer())[0] == 200
    for client in (second, fourth):
        client.close()


# -- memory: bodies in flight, and heads refused before their body


async def test_request_bodies_in_flight_share_one_budget(serve, connect) -> None:
    """Bodies held at once stay within bodies_bytes: one that does not fit is 503 with
    Retry-After before it is read; answered requests give their bytes back; one body
    larger than the budget still goes when nothing else is held."""
    release, held = asyncio.Event(), asyncio.Event()

    async def holding(request: Request) -> Answer:
        held.set()
        await release.wait()
        return await echo(request)

    server = await serve(holding, limits=Limits(bodies_bytes=1000))
    first = await connect(server)
    first.send(post("/a", b"a" * 600))
    await asyncio.wait_for(held.wait(), 2)
    assert server.bodies.used == 600
    second = await connect(server)
    second.send(post("/a", b"b" * 600))
    status, headers, body = await second.answer()
    assert (status, json.loads(body)["error"]["code"]) == (503, "gateway_busy")
    assert headers["retry-after"] == "1"
    second.close()
    release.set()
    assert (await first.answer())[0] == 200
    assert server.bodies.used == 0
    first.send(post("/a", b"c" * 5000))
    assert json.loads((await first.answer())[2])["body"] == "c" * 5000
    assert server.bodies.used == 0
    first.close()


async def test_every_way_a_connection_ends_gives_its_bytes_back(serve, connect) -> None:
    """A body cut short, a client gone mid-answer, a 408: the budget returns to 0."""
    started = asyncio.Event()

    async def slow(request: Request) -> Answer:
        started.set()
        await asyncio.sleep(30)
        return Response(b"{}")

    server = await serve(slow, limits=FAST)
    cut = await connect(server)
    cut.send(post("/a", b"x" * 500)[:-400])
    gone = await connect(server)
    gone.send(post("/a", b"y" * 300))
    await asyncio.wait_for(started.wait(), 2)
    await settled(lambda: server.bodies.used == 800)
    assert server.bodies.used == 800
    gone.close()
    assert (await cut.answer())[0] == 408
    cut.close()
    await settled(lambda: not server.connections)
    assert server.bodies.used == 0


def refuse_without_key(head: Head) -> Verdict:
    """A head check: no ``api-key`` header is 401; else a body of at most 100 bytes."""
    if not any(name.lower() == "api-key" for name, _ in head.headers):
        return errors.unauthorized("no key")
    return 100


async def test_a_refused_head_is_answered_before_its_body_is_sent(serve, connect) -> None:
    """The head check's error goes out as soon as the headers are in: the client that
    declared 50 MB and sent none of it reads 401; nothing was reserved for it."""
    server = await serve(check_head=refuse_without_key, max_body_bytes=10**9)
    client = await connect(server)
    client.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n")
    status, headers, body = await client.answer()
    assert (status, json.loads(body)["error"]["message"]) == (401, "no key")
    assert headers["connection"] == "close"
    assert server.bodies.used == 0
    client.close()
    keyed = await connect(server)
    keyed.send(b"POST /a HTTP/1.1\r\nHost: x\r\napi-key: k\r\nContent-Length: 5000\r\n\r\n")
    status, _, body = await keyed.answer()
    assert json.loads(body)["oversize"] == 5000  # over the check's 100: the handler says 413
    keyed.close()


async def test_a_deferred_head_check_holds_the_body_until_it_is_ready(serve, connect) -> None:
    """A verdict that waits (a key being looked up) stops reading the body; when ready,
    the check is asked again and its answer stands."""
    ready = asyncio.Event()
    asked: list[Head] = []

    def check(head: Head) -> Verdict:
        asked.append(head)
        if not ready.is_set():
            return Deferred(limit=10**6, ready=ready.wait)
        return errors.unauthorized("looked up: unknown")

    server = await serve(check_head=check, max_body_bytes=10**9)
    client = await connect(server)
    client.send(post("/v1/x", b"z" * 5000)[:-4000])
    await asyncio.sleep(0.1)
    assert len(asked) == 1 and asked[0].path == "/v1/x" and asked[0].length == 5000
    ready.set()
    status, _, body = await client.answer()
    assert (status, json.loads(body)["error"]["message"]) == (401, "looked up: unknown")
    assert len(asked) == 2
    client.close()


# -- half-close


async def test_a_client_that_half_closes_gets_its_answer(serve, connect) -> None:
    """A POST, then shutdown(SHUT_WR): the request is complete and is answered before
    the connection closes; pipelined requests before the half-close too."""

    async def slow_echo(request: Request) -> Answer:
        await asyncio.sleep(0.1)  # the half-close arrives while the answer is worked on
        return await echo(request)

    server = await serve(slow_echo)
    client = await connect(server)
    client.send(post("/a", b"first") + post("/b", b"second"))
    client.writer.write_eof()
    first, second = await client.answer(), await client.answer()
    assert (first[0], json.loads(first[2])["body"]) == (200, "first")
    assert (second[0], json.loads(second[2])["body"]) == (200, "second")
    assert await client.closed()
    client.close()


async def test_a_client_that_closes_while_its_answer_is_worked_on_cancels_it(
    serve, connect
) -> None:
    """A full close looks like a half-close at first (both are a FIN); the gateway tells
    them apart and still cancels the handler of a client that is gone."""
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
    client = await connect(server)
    client.send(post("/a", b""))
    await asyncio.wait_for(started.wait(), 2)
    client.close()
    await asyncio.wait_for(cancelled.wait(), 2)
