"""Gateway overhead against the sim engine: direct vs through the gateway.

    .venv/bin/python bench/gateway_overhead.py [--requests 2000] [--seconds 5] [--concurrency 64]

Starts one sim process (ttft 0, tps 0: answers at once) and one gateway process
in front of it (a static snapshot file instead of the agent), then measures,
for the sim directly and through the gateway, in the same run:

1. latency at concurrency 1 (non-streaming chat, ``--requests`` requests):
   p50 and p99, and the difference (the gateway's added latency);
2. throughput at concurrency ``--concurrency`` for ``--seconds``: requests/s
   and the ratio gateway/direct.

The client is aiohttp with one keep-alive session and uvloop. Processes are
started fresh for the run and killed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.spec.model import ServiceSpec

BODY = {"model": "chat", "messages": [{"role": "user", "content": "say something short"}],
        "max_tokens": 16}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening" not in line:
        raise SystemExit(f"did not start: {argv}: {line}")
    return proc


def snapshot_file(sim_port: int, slots: int) -> Path:
    spec = ServiceSpec.model_validate({
        "model": "sim:tiny", "engine": {"kind": "sim", "version": "1.2.0"}, "slots": slots,
        "admission": {"queue_size": 4096},
    })
    replica = ReplicaStatus(
        replica_id="chat-0", environment="bench", service="chat", slot=0, runtime_hash="h",
        engine="sim", engine_version="1.2.0", state=ReplicaState.READY, port=sim_port,
        served_name="chat",
    )
    body = {"generation": 1, "services": {"chat": spec.model_dump(mode="json")},
            "replicas": [replica.to_json()], "continuation": {}}
    path = Path(tempfile.mkdtemp()) / "snapshot.json"
    path.write_text(json.dumps(body))
    return path


async def one(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url, json=BODY) as resp:
        await resp.read()
        if resp.status != 200:
            raise SystemExit(f"{url} answered {resp.status}")


async def latencies(url: str, count: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            await one(session, url)
        out = []
        for _ in range(count):
            start = time.perf_counter()
            await one(session, url)
            out.append(time.perf_counter() - start)
        return out


async def throughput(url: str, concurrency: int, seconds: float) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, url) for _ in range(concurrency)))
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await one(session, url)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1]


async def measure(direct: str, gateway: str, args: argparse.Namespace) -> None:
    d_lat = await latencies(direct, args.requests)
    g_lat = await latencies(gateway, args.requests)
    d50, d99, g50, g99 = (pct(d_lat, 0.5), pct(d_lat, 0.99), pct(g_lat, 0.5), pct(g_lat, 0.99))
    print(f"concurrency 1, {args.requests} non-streaming requests")
    print(f"  direct : p50 {d50 * 1e3:.3f} ms  p99 {d99 * 1e3:.3f} ms")
    print(f"  gateway: p50 {g50 * 1e3:.3f} ms  p99 {g99 * 1e3:.3f} ms")
    print(f"  added  : p50 {(g50 - d50) * 1e3:.3f} ms (goal < 0.5)  "
          f"p99 {(g99 - d99) * 1e3:.3f} ms (goal < 2)")
    d_rps = await throughput(direct, args.concurrency, args.seconds)
    g_rps = await throughput(gateway, args.concurrency, args.seconds)
    print(f"concurrency {args.concurrency}, {args.seconds:g} s each")
    print(f"  direct {d_rps:.0f} req/s, gateway {g_rps:.0f} req/s, "
          f"ratio {g_rps / d_rps:.2f} (goal >= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    sim_port, gw_port = free_port(), free_port()
    sim = start([sys.executable, "-m", "llmfleet.engines.sim", "--port", str(sim_port),
                 "--model-name", "chat", "--ttft", "0", "--tps", "0",
                 "--slots", str(args.concurrency * 2)])
    snap = snapshot_file(sim_port, args.concurrency * 2)
    gateway = start([sys.executable, "-m", "llmfleet.gateway", "--environment", "bench",
                     "--port", str(gw_port), "--static-snapshot", str(snap)])
    try:
        time.sleep(0.3)
        path = "/v1/chat/completions"
        uvloop.run(measure(f"http://127.0.0.1:{sim_port}{path}",
                           f"http://127.0.0.1:{gw_port}{path}", args))
    finally:
        for proc in (gateway, sim):
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
