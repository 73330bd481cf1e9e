"""Throughput of one sim engine process, against a trivial aiohttp baseline.

Starts a sim (ttft 0, tps 0, 16 output tokens) and a "hello" aiohttp server,
each as its own process on a free port, then drives each with a keep-alive
aiohttp client at concurrency 1, 16 and 64 for ~3 s per cell and prints
requests/s (median of 1-second windows) and median latency.

    .venv/bin/python bench/sim_throughput.py [--seconds 3]

The client is Python too and shares the machine, so the numbers are a floor
for the server; the baseline row shows what the same client gets from a
server that does nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from llmfleet.engines.sim.process import SimProcess, free_port, start_sim

CONCURRENCY = (1, 16, 64)
CHAT = {"messages": [{"role": "user", "content": "benchmark me"}], "max_tokens": 16}


@dataclass(frozen=True)
class Cell:
    requests_per_s: float
    latency_ms: float
    errors: int
    server_cpu_us: float
    """server CPU time per request: capacity of one server core is 1e6 / this."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_hello(port: int) -> None:
    """The baseline: aiohttp answering a fixed body, on uvloop like the sim."""
    import uvloop

    async def hello(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text='{"hello": "world"}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/hello", hello)
    print(f"hello listening on http://127.0.0.1:{port}", flush=True)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def start_hello() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    argv = [sys.executable, __file__, "--hello-server", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()
    time.sleep(0.5)  # run_app binds after printing; give it a moment
    return process, f"http://127.0.0.1:{port}/hello"


async def measure(
    send: Callable[[], Awaitable[bool]], concurrency: int, seconds: float, server_pid: int
) -> Cell:
    """Run ``concurrency`` workers in a loop; req/s per 1-second window and latencies.

    perf_counter rather than the loop clock: uvloop's clock has millisecond steps.
    """
    start = time.perf_counter()
    cpu_before = cpu_seconds(server_pid)
    done_at: list[float] = []
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while (now := time.perf_counter()) < start + seconds:
            ok = await send()
            finished = time.perf_counter()
            errors += not ok
            done_at.append(finished)
            latencies.append(finished - now)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu_us = (cpu_seconds(server_pid) - cpu_before) * 1e6 / max(len(done_at), 1)
    windows = [0] * max(int(seconds), 1)
    for moment in done_at:
        index = int(moment - start)
        if index < len(windows):
            windows[index] += 1
    latency_ms = statistics.median(latencies) * 1000
    return Cell(statistics.median(windows), latency_ms, errors, cpu_us)


def sender(
    session: aiohttp.ClientSession, url: str, body: dict[str, object]
) -> Callable[[], Awaitable[bool]]:
    async def send() -> bool:
        async with session.post(url, json=body) as response:
            await response.read()
            return response.status == 200

    return send


async def run(
    sim: SimProcess, hello: tuple[int, str], seconds: float
) -> list[tuple[str, int, Cell]]:
    hello_pid, hello_url = hello
    sim_pid = sim.popen.pid
    targets = {
        "sim chat, non-streaming": (sim_pid, sim.url + "/v1/chat/completions", CHAT),
        "sim chat, streaming": (
            sim_pid,
            sim.url + "/v1/chat/completions",
            {**CHAT, "stream": True},
        ),
        "sim completions, non-stream": (
            sim_pid,
            sim.url + "/v1/completions",
            {"prompt": "benchmark me", "max_tokens": 16},
        ),
        "baseline hello handler": (hello_pid, hello_url, {"x": 1}),
    }
    rows = []
    for concurrency in CONCURRENCY:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            for name, (pid, url, body) in targets.items():
                send = sender(session, url, body)
                await measure(send, concurrency, 0.3, pid)  # warm up connections
                rows.append((name, concurrency, await measure(send, concurrency, seconds, pid)))
    return rows


def print_table(rows: list[tuple[str, int, Cell]]) -> None:
    print(
        f"{'target':28} {'conc':>4} {'req/s (median)':>14} {'p50 ms':>7} {'errors':>6}"
        f" {'server CPU us/req':>17} {'req/s per server core':>21}"
    )
    for name, concurrency, cell in sorted(rows, key=lambda row: (row[0], row[1])):
        per_core = 1e6 / cell.server_cpu_us if cell.server_cpu_us else float("inf")
        print(
            f"{name:28} {concurrency:4d} {cell.requests_per_s:14.0f} {cell.latency_ms:7.2f}"
            f" {cell.errors:6d} {cell.server_cpu_us:17.0f} {per_core:21.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--hello-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hello_server:
        serve_hello(args.hello_server)
        return
    sim = start_sim(["--ttft", "0", "--tps", "0", "--output-tokens", "16", "--slots", "64"])
    hello, hello_url = start_hello()
    try:
        import uvloop

        print_table(uvloop.run(run(sim, (hello.pid, hello_url), args.seconds)))
    finally:
        sim.stop()
        hello.terminate()
        hello.wait()


if __name__ == "__main__":
    main()
