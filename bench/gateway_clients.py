"""Upstream client libraries against the sim engine: which one the gateway uses.

    .venv/bin/python bench/gateway_clients.py [--seconds 3] [--rounds 3] [--cpu 1]

The gateway's upstream client is on the hot path of every request, so the
choice is measured, not assumed. One sim process (ttft 0, tps 0: answers at
once) is started; each client then sends the bench's chat request, in the same
run and interleaved over ``--rounds`` rounds (medians reported), at
concurrency 1 (p50 latency and requests/s) and at concurrency 64 (requests/s):

* ``gateway``: the gateway's own ``UpstreamClient`` (keep-alive ``ConnectionPool``
  over httptools, with its timeouts and error translation: the gateway's choice);
* ``aiohttp``: one ``ClientSession``, keep-alive connector;
* ``httpx``: one ``AsyncClient`` with a keep-alive pool of 64 (h11 underneath);
* ``raw``: a minimal keep-alive asyncio protocol parsing with ``httptools``, no
  timeouts, no error handling (the floor for any client; not a product);

each in two modes: ``plain`` (a non-streaming request, the body read whole) and
``stream`` (``stream: true``, the SSE body read up to ``[DONE]`` and drained to
the end so the connection is reused), which is what the gateway does for a
non-streaming client when ``retries.resume_non_streaming`` is on.

The client runs on uvloop. ``--cpu N`` pins the client to CPU N and the sim to
the others with ``taskset`` (when there are at least two CPUs), so the two do
not trade places on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httptools
import httpx
import uvloop

from llmfleet.gateway.pool import ConnectionPool
from llmfleet.gateway.upstream import UpstreamClient
from llmfleet.spec.model import Timeouts

BODY: dict[str, Any] = {
    "model": "chat",
    "messages": [{"role": "user", "content": "say something short"}],
    "max_tokens": 16,
}
PLAIN = json.dumps(BODY).encode()
STREAM = json.dumps({**BODY, "stream": True, "stream_options": {"include_usage": True}}).encode()
HEADERS = {"Content-Type": "application/json"}

Send = Callable[[bytes], Awaitable[None]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sim(port: int, cpus: str | None) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "llmfleet.engines.sim",
        "--port",
        str(port),
        "--model-name",
        "chat",
        "--ttft",
        "0",
        "--tps",
        "0",
        "--slots",
        "256",
    ]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    if "listening" not in proc.stdout.readline():
        raise SystemExit("the sim did not start")
    return proc


class GatewayClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = UpstreamClient(ConnectionPool())
        self.timeouts = Timeouts()

    async def send(self, body: bytes) -> None:
        if body is PLAIN:
            await self.client.post_json(self.url, body, self.timeouts)
            return
        stream = await self.client.open_stream(self.url, body, self.timeouts)
        try:
            while not stream.finished:
                await stream.next_burst(self.timeouts.idle_s)
        finally:
            await stream.close()  # the pool keeps the connection once the terminator is in

    async def close(self) -> None:
        self.client.close()


class AiohttpClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def send(self, body: bytes) -> None:
        async with self.session.post(self.url, data=body, headers=HEADERS) as resp:
            if body is PLAIN:
                await resp.read()
                return
            while b"data: [DONE]" not in await resp.content.readany():
                pass
            await resp.read()  # the chunked terminator: the connection goes back to the pool

    async def close(self) -> None:
        await self.session.close()


class HttpxClient:
    def __init__(self, url: str) -> None:
        self.url = url
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.client = httpx.AsyncClient(limits=limits, timeout=30)

    async def send(self, body: bytes) -> None:
        if body is PLAIN:
            await (await self.client.post(self.url, content=body, headers=HEADERS)).aread()
            return
        request = self.client.build_request("POST", self.url, content=body, headers=HEADERS)
        response = await self.client.send(request, stream=True)
        try:
            async for _block in response.aiter_raw():  # to the end: [DONE], then EOF
                pass
        finally:
            await response.aclose()

    async def close(self) -> None:
        await self.client.aclose()


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; httptools parses the answers."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        pass

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


class RawClient:
    def __init__(self, url: str) -> None:
        rest = url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.split(":")
        self.host, self.port, self.path = host, int(port), "/" + path
        self.idle: list[_RawConnection] = []

    async def send(self, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        if self.idle:
            conn = self.idle.pop()
        else:
            transport, conn = await loop.create_connection(_RawConnection, self.host, self.port)
            conn.transport = transport  # uvloop may call connection_made only later
        assert conn.transport is not None
        conn.done = loop.create_future()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        conn.transport.write(head.encode() + body)
        await conn.done
        self.idle.append(conn)

    async def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()


CLIENTS: dict[str, Callable[[str], Any]] = {
    "gateway": GatewayClient,
    "aiohttp": AiohttpClient,
    "httpx": HttpxClient,
    "raw": RawClient,
}


async def at_c1(send: Send, body: bytes, seconds: float) -> tuple[float, float]:
    """(requests/s, p50 seconds) of one request at a time."""
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while (start := time.perf_counter()) < deadline:
        await send(body)
        samples.append(time.perf_counter() - start)
    return len(samples) / seconds, statistics.median(samples)


async def at_concurrency(send: Send, body: bytes, concurrency: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await send(body)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


Results = dict[tuple[str, str], list[tuple[float, float, float]]]


async def measure(url: str, args: argparse.Namespace) -> Results:
    results: Results = {}
    for _ in range(args.rounds):
        for name, factory in CLIENTS.items():
            for mode, body in (("plain", PLAIN), ("stream", STREAM)):
                client = factory(url)
                try:
                    for _ in range(50):
                        await client.send(body)
                    rps1, p50 = await at_c1(client.send, body, args.seconds)
                    rps64 = await at_concurrency(client.send, body, args.concurrency, args.seconds)
                finally:
                    await client.close()
                results.setdefault((name, mode), []).append((rps1, p50, rps64))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--cpu", type=int, default=None, help="pin the client to this CPU and the sim to the others"
    )
    args = parser.parse_args()
    sim_cpus = None
    cpus = sorted(os.sched_getaffinity(0))
    if args.cpu is not None and len(cpus) > 1:
        os.sched_setaffinity(0, {args.cpu})
        sim_cpus = ",".join(str(c) for c in cpus if c != args.cpu)
    port = free_port()
    sim = start_sim(port, sim_cpus)
    try:
        time.sleep(0.3)
        results = uvloop.run(measure(f"http://127.0.0.1:{port}/v1/chat/completions", args))
    finally:
        sim.kill()
        sim.wait()
    print(
        f"load average {os.getloadavg()[0]:.2f}; medians of {args.rounds} rounds, "
        f"{args.seconds:g} s each"
    )
    print(
        f"{'client':8} {'mode':7} {'c=1 req/s':>10} {'c=1 p50 ms':>11} "
        f"{'c=' + str(args.concurrency) + ' req/s':>11}"
    )
    for (name, mode), rows in results.items():
        rps1, p50, rps64 = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"{name:8} {mode:7} {rps1:10.0f} {p50 * 1e3:11.3f} {rps64:11.0f}")


if __name__ == "__main__":
    main()
