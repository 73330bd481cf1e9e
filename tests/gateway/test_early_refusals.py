"""What a request's headers already decide is answered before its body is read: a
body larger than any service the caller may use accepts (413), a caller that may use
no service (401/403); and 8 clients declaring 60 MiB each leave the gateway process
small. Raw sockets against the gateway app, and a real gateway process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from llmfleet.gateway.keys import KeyInfo, StaticKeyVerifier, StoreKeyVerifier
from tests.gateway.conftest import free_port, replica, service, snapshot, spawn
from tests.gateway.test_process import FakeStore
from tests.gateway.test_server import Client

CHAT = b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}'
MiB = 1024 * 1024


def head(length: int | None, *extra: str, path: str = "/v1/chat/completions") -> bytes:
    """A POST's head: Content-Length ``length``, or chunked when None."""
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json", framing]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Any], Awaitable[Client]]]:
    """``await connect(gw)``: a raw client to a gateway under test, closed at the end."""
    clients: list[Client] = []

    async def open_to(gw: Any) -> Client:
        clients.append(await Client.to(gw.app.server))
        return clients[-1]

    yield open_to
    for client in clients:
        client.close()
        with contextlib.suppress(OSError):
            await client.writer.wait_closed()


async def refused(client: Client) -> tuple[int, str]:
    """The status and message of an error answer."""
    status, _, body = await client.answer()
    return status, json.loads(body)["error"]["message"]


async def no_answer_yet(client: Client) -> bool:
    """Whether the gateway is still waiting (for the body) after 0.3 s."""
    try:
        await asyncio.wait_for(client.reader.read(1), 0.3)
    except TimeoutError:
        return True
    return False


async def test_a_body_larger_than_any_service_accepts_is_413_before_it_is_sent(
    make_gateway, connect
) -> None:
    """60 MiB declared to a gateway whose service takes 4 MiB: 413 from the headers
    alone, counted like any other answer."""
    gw = await make_gateway(snapshot({"chat": service()}, []))
    client = await connect(gw)
    client.send(head(60 * MiB))
    status, message = await refused(client)
    assert status == 413 and str(4 * MiB) in message
    requests = gw.gateway.metrics.requests
    assert requests.labels("", "/v1/chat/completions", "413").value == 1


async def test_a_chunked_body_over_the_limit_is_413_with_the_services_limit(
    make_gateway, connect
) -> None:
    """A chunked body is cut once it passes the largest limit, and the 413 names that
    limit, not the gateway's hard cap."""
    gw = await make_gateway(snapshot({"chat": service(admission={"max_body_bytes": 1000})}, []))
    client = await connect(gw)
    client.send(head(None) + b"320\r\n" + b"x" * 800 + b"\r\n" + b"320\r\n" + b"y" * 800 + b"\r\n")
    status, message = await refused(client)
    assert status == 413 and "1000" in message and "1600" in message


async def test_no_key_or_an_unknown_key_is_401_before_the_body(sims, make_gateway, connect) -> None:
    """Every service needs a key: none, or one that is unknown, is 401 from the headers;
    a valid key is served as before."""
    spec = service(auth={"required": True})
    keys = StaticKeyVerifier({"sk-good": KeyInfo(id="1", name="good")})
    gw = await make_gateway(
        snapshot({"chat": spec}, [replica("chat", spawn(sims), 0)]), key_verifier=keys
    )
    for extra in ((), ("Authorization: Bearer sk-bad",)):
        client = await connect(gw)
        client.send(head(MiB, *extra))
        status, message = await refused(client)
        assert status == 401, message
    client = await connect(gw)
    client.send(head(len(CHAT), "Authorization: Bearer sk-good") + CHAT)
    assert (await client.answer())[0] == 200


async def test_a_service_open_to_all_still_takes_callers_without_a_key(
    make_gateway, connect
) -> None:
    """An open service beside keyed ones: without a key a body may be as large as the
    open service takes (larger is 413 at once); with any key it may be as large as
    the keyed ones take, until the key is known to be bad."""
    services = {
        "open": service(admission={"max_body_bytes": 1000}),
        "keyed": service(auth={"required": True}, admission={"max_body_bytes": 100_000}),
    }
    gw = await make_gateway(snapshot(services, []), key_verifier=StaticKeyVerifier({}))
    client = await connect(gw)
    client.send(head(5000))
    assert (await refused(client))[0] == 413
    client = await connect(gw)
    client.send(head(500))
    assert await no_answer_yet(client)
    client.send(b"not json" * 62 + b"1234")
    assert (await client.answer())[0] == 400  # the handler read it
    client = await connect(gw)
    client.send(head(5000, "Authorization: Bearer sk-unknown"))
    assert (await refused(client))[0] == 413  # a bad key reaches the open service only


async def test_a_scoped_key_may_send_at_most_the_largest_body_of_its_services(
    make_gateway, connect
) -> None:
    """A key scoped to the small service: 413 above its limit from the headers; an
    unscoped key goes on to the body; a key for no service served here is 403."""
    services = {
        "small": service(auth={"required": True}, admission={"max_body_bytes": 1000}),
        "big": service(auth={"required": True}, admission={"max_body_bytes": 100_000}),
    }
    keys = StaticKeyVerifier(
        {
            "sk-small": KeyInfo(id="1", name="small", services=frozenset({"small"})),
            "sk-all": KeyInfo(id="2", name="all"),
            "sk-gone": KeyInfo(id="3", name="gone", services=frozenset({"gone"})),
        }
    )
    gw = await make_gateway(snapshot(services, []), key_verifier=keys)
    client = await connect(gw)
    client.send(head(5000, "Authorization: Bearer sk-small"))
    status, message = await refused(client)
    assert status == 413 and "1000" in message
    client = await connect(gw)
    client.send(head(5000, "api-key: sk-all"))
    assert await no_answer_yet(client)
    client = await connect(gw)
    client.send(head(5000, "Authorization: Bearer sk-gone"))
    status, message = await refused(client)
    assert status == 403 and "'gone'" in message


async def test_a_key_the_store_has_not_seen_is_looked_up_before_the_body(
    make_gateway, connect
) -> None:
    """A secret not in the verifier's cache: the body waits while the store is asked;
    an unknown one is 401 without the body, a valid one is looked up once."""
    store = FakeStore()
    gw = await make_gateway(
        snapshot({"chat": service(auth={"required": True})}, []),
        key_verifier=StoreKeyVerifier(store, clock=asyncio.get_running_loop().time),
    )
    client = await connect(gw)
    client.send(head(MiB, "Authorization: Bearer sk-nope") + b"x" * 1000)
    assert (await refused(client))[0] == 401
    assert store.calls == 1
    client = await connect(gw)
    client.send(head(2000, "Authorization: Bearer sk-a") + b"x" * 1000)
    assert await no_answer_yet(client)
    client.send(b"x" * 1000)
    assert (await client.answer())[0] == 400  # not JSON: the handler read the body
    assert store.calls == 2


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def send_declared(port: int, body: memoryview) -> int:
    """Declare ``body``'s size, send it in 1 MiB writes as the answer comes; the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        writer.write(head(len(body)))
        with contextlib.suppress(OSError):
            for start in range(0, len(body), MiB):
                writer.write(body[start : start + MiB])
                await writer.drain()

    sending = asyncio.create_task(send())
    try:
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1])
    finally:
        sending.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_eight_clients_declaring_60_mib_leave_the_gateway_process_small(
    tmp_path: Path,
) -> None:
    """A real gateway process, 8 connections each declaring and sending 60 MiB: each is
    413 at once and the gateway's resident memory grows by less than 100 MB (it read
    them whole before: 65 -> 547 MB)."""
    spec = service().model_dump(mode="json")
    snap = tmp_path / "snapshot.json"
    snap.write_text(json.dumps({"generation": 1, "services": {"chat": spec}, "replicas": []}))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "llmfleet.gateway", "--environment", "e"),
        *("--port", str(port), "--static-snapshot", str(snap)),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert b"listening" in await asyncio.wait_for(proc.stdout.readline(), 10)
        before = peak = rss_kib(proc.pid)
        body = memoryview(bytes(60 * MiB))
        clients = asyncio.gather(*(send_declared(port, body) for _ in range(8)))
        while not clients.done():
            peak = max(peak, rss_kib(proc.pid))
            await asyncio.sleep(0.01)
        statuses = await clients
        growth_mb = (peak - before) * 1024 / 1e6
        print(f"gateway RSS {before * 1024 / 1e6:.0f} MB, peak growth {growth_mb:.1f} MB")
        assert growth_mb < 100
        assert statuses == [413] * 8
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
