"""Scrape time of the fleet endpoint with many sim replicas.

    .venv/bin/python bench/observe_scrape.py [--replicas 100] [--processes 100] [--rounds 20]

Starts ``--processes`` real sim engine processes (at low priority) and points
``--replicas`` replica entries at them round-robin (with fewer processes than
replicas, several entries share a process: a conservative set-up, each process
then answers several scrapes at once). It serves the agent's real
``FleetScraper`` on an HTTP port, caching off, and times ``GET /metrics`` from a
client: every round reads all replicas' /metrics concurrently, normalises and
renders them. Prints p50/p95/max and the body size, and beside it the baseline
measured in the same run, rounds interleaved: the same replicas' own /metrics
read concurrently and nothing more, as a Prometheus server scraping each
replica itself would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

import aiohttp
from aiohttp import web

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.observe.fleet import FleetScraper, Target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sims(count: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    procs, ports = [], []
    for _ in range(count):
        port = free_port()
        argv = [sys.executable, "-m", "llmfleet.engines.sim", "--port", str(port),
                "--host", "127.0.0.1", "--model-name", "chat"]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      preexec_fn=lambda: os.nice(10)))
        ports.append(port)
    return procs, ports


async def wait_up(session: aiohttp.ClientSession, ports: list[int]) -> None:
    for port in ports:
        for _ in range(600):
            try:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


def targets(replicas: int, ports: list[int]) -> list[Target]:
    return [Target(ReplicaStatus(
        replica_id=f"production-chat-{i}", environment="production", service=f"svc{i % 10}",
        slot=i, runtime_hash="", engine="sim", engine_version="1.0.0", state=ReplicaState.READY,
        port=ports[i % len(ports)], ready_at=time.time())) for i in range(replicas)]


async def main(args: argparse.Namespace) -> None:
    procs, ports = start_sims(args.processes)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            started = time.monotonic()
            await wait_up(session, ports)
            print(f"{args.processes} sim processes up in {time.monotonic() - started:.1f} s")
            await measure(session, targets(args.replicas, ports), args.rounds)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


async def measure(session: aiohttp.ClientSession, fleet: list[Target], rounds: int) -> None:
    loop = asyncio.get_running_loop()
    scraper = FleetScraper(session=session, targets=lambda: fleet, clock=loop.time,
                           wall_clock=time.time, cache_s=0.0, timeout_s=5.0)

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(text=await scraper.render())

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async def fetch(url: str) -> bytes:
        async with session.get(url) as response:
            return await response.read()

    async def fetch_all() -> None:
        """The baseline: every replica's own /metrics read once, concurrently, as a
        Prometheus server scraping each of them would, with nothing parsed or merged."""
        await asyncio.gather(*(fetch(f"http://127.0.0.1:{t.status.port}/metrics")
                               for t in fleet))

    times, raw, size = [], [], 0
    async with aiohttp.ClientSession() as client:
        for index in range(rounds + 2):
            for step in ("ours", "raw") if index % 2 == 0 else ("raw", "ours"):
                begun = loop.time()
                if step == "raw":
                    await fetch_all()
                    raw.append(loop.time() - begun)
                    continue
                async with client.get(f"http://127.0.0.1:{port}/metrics") as response:
                    body = await response.read()
                times.append(loop.time() - begun)
                size = len(body)
    await runner.cleanup()
    times = sorted(times[2:])  # two warm-up rounds
    raw = sorted(raw[2:])
    text = body.decode()
    up = sum(1 for line in text.splitlines()
             if line.startswith("llmfleet_target_up{") and line.endswith(" 1"))
    series = sum(1 for line in text.splitlines() if not line.startswith("#"))
    print(f"replicas {len(fleet)}; body {size / 1024:.0f} KiB; {series} samples; "
          f"targets up {up}")
    print(f"scrape p50 {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {times[int(len(times) * 0.95) - 1] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
    print(f"baseline, the {len(fleet)} replicas' own /metrics read concurrently: "
          f"p50 {statistics.median(raw) * 1000:.0f} ms, "
          f"p95 {raw[int(len(raw) * 0.95) - 1] * 1000:.0f} ms; "
          f"the fleet endpoint takes {statistics.median(times) / statistics.median(raw):.1f}x "
          "(normalising, merging and rendering on top)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--processes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    import uvloop

    uvloop.run(main(parser.parse_args()))
