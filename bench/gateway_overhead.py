"""Gateway overhead against the sim engine: direct vs through the gateway.

    .venv/bin/python bench/gateway_overhead.py [--rounds 5] [--requests 1000] [--seconds 3]
        [--concurrency 64] [--pin]

Starts one sim process (ttft 0, tps 0: answers at once) and two gateway
processes in front of it (a static snapshot file instead of the agent): one
with the service defaults (``resume``: a non-streaming request goes upstream
as a stream, so it can be continued mid-answer) and one with
``retries.resume_non_streaming: false`` (``plain``: the request goes upstream
as it came). Then, for ``--rounds`` rounds, interleaved direct / resume /
plain so that a noisy neighbour hurts all three alike:

1. latency at concurrency 1: ``--requests`` non-streaming chat requests, p50 and p99;
2. throughput at ``--concurrency`` for ``--seconds``: requests/s.

The gateway's added latency and its rate ratio are computed per round against
that round's direct run (the added latency against the hop's too), and the
medians over rounds are reported with the goals (added p50 < 0.5 ms, added
p99 < 2 ms, rate ratio >= 0.5) and the load average at the start and the
end. ``--pin`` puts the sim on CPU 0 and the gateways on CPU 1 with taskset
(the client floats), for a machine with two CPUs or more. The client is
aiohttp on uvloop with one keep-alive session.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.spec.model import ServiceSpec

BODY = {
    "model": "chat",
    "messages": [{"role": "user", "content": "say something short"}],
    "max_tokens": 16,
}
GOALS = {"p50": 0.5e-3, "p99": 2e-3, "ratio": 0.5}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(argv: list[str], cpu: int | None = None) -> subprocess.Popen[str]:
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening" not in line:
        raise SystemExit(f"did not start: {argv}: {line}")
    return proc


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def serve_hop(upstream_port: int, port: int) -> None:
    """The ``hop`` target: each client connection spliced to its own sim connection."""

    async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(relay(reader, up_writer), relay(up_reader, writer))

    server = await asyncio.start_server(splice, "127.0.0.1", port, backlog=1024)
    print(f"hop listening on {port}", flush=True)
    await server.serve_forever()


def snapshot_file(sim_port: int, slots: int, *, retries: dict[str, Any] | None = None) -> Path:
    spec = ServiceSpec.model_validate(
        {
            "model": "sim:tiny",
            "engine": {"kind": "sim", "version": "1.2.0"},
            "slots": slots,
            "admission": {"queue_size": 4096},
            "retries": retries or {},
        }
    )
    replica = ReplicaStatus(
        replica_id="chat-0",
        environment="bench",
        service="chat",
        slot=0,
        runtime_hash="h",
        engine="sim",
        engine_version="1.2.0",
        state=ReplicaState.READY,
        port=sim_port,
        served_name="chat",
    )
    body = {
        "generation": 1,
        "services": {"chat": spec.model_dump(mode="json")},
        "replicas": [replica.to_json()],
        "continuation": {},
    }
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


Rounds = dict[str, list[tuple[float, float, float]]]


async def measure(targets: dict[str, str], args: argparse.Namespace) -> Rounds:
    """Per target, one (p50, p99, requests/s) per round, the targets interleaved."""
    rounds: Rounds = {name: [] for name in targets}
    for index in range(args.rounds):
        order = list(targets) if index % 2 == 0 else list(reversed(targets))
        lat = {name: await latencies(targets[name], args.requests) for name in order}
        rps = {
            name: await throughput(targets[name], args.concurrency, args.seconds) for name in order
        }
        for name in targets:
            rounds[name].append((pct(lat[name], 0.5), pct(lat[name], 0.99), rps[name]))
        print(
            f"  round {index + 1}: "
            + ", ".join(
                f"{name} p50 {rounds[name][-1][0] * 1e3:.3f} ms {rps[name]:.0f} req/s"
                for name in targets
            ),
            flush=True,
        )
    return rounds


def report(rounds: Rounds, args: argparse.Namespace, load: tuple[float, float]) -> None:
    direct, hop = rounds["direct"], rounds["hop"]
    print(
        f"\nload average (1 min) {load[0]:.2f} at the start, {load[1]:.2f} at the end; "
        f"{args.rounds} rounds, medians"
    )
    print(
        f"{'target':8} {'p50 ms':>8} {'p99 ms':>8} {'req/s c=' + str(args.concurrency):>12} "
        f"{'+p50 ms':>8} {'+p99 ms':>8} {'ratio':>6} {'+p50 hop':>9}  verdict"
    )
    for name, rows in rounds.items():
        p50 = statistics.median(r[0] for r in rows)
        p99 = statistics.median(r[1] for r in rows)
        rps = statistics.median(r[2] for r in rows)
        line = f"{name:8} {p50 * 1e3:8.3f} {p99 * 1e3:8.3f} {rps:12.0f}"
        if name != "direct":
            added50 = _median_of(rows, direct, lambda r, d: r[0] - d[0])
            added99 = _median_of(rows, direct, lambda r, d: r[1] - d[1])
            ratio = _median_of(rows, direct, lambda r, d: r[2] / d[2])
            line += f" {added50 * 1e3:8.3f} {added99 * 1e3:8.3f} {ratio:6.2f}"
        if name not in ("direct", "hop"):
            over_hop = _median_of(rows, hop, lambda r, d: r[0] - d[0])
            verdicts = [added50 < GOALS["p50"], added99 < GOALS["p99"], ratio >= GOALS["ratio"]]
            verdict = " ".join(("PASS" if ok else "FAIL") for ok in verdicts)
            line += f" {over_hop * 1e3:9.3f}  {verdict}"
        print(line)
    print(
        f"goals: +p50 < {GOALS['p50'] * 1e3:g} ms, +p99 < {GOALS['p99'] * 1e3:g} ms, "
        f"ratio >= {GOALS['ratio']:g} (verdicts in that order); +p50 hop: the gateway's p50 "
        "less the byte relay's, what its own work adds"
    )


Row = tuple[float, float, float]


def _median_of(rows: list[Row], baseline: list[Row], measure: Callable[[Row, Row], float]) -> float:
    return statistics.median(measure(r, b) for r, b in zip(rows, baseline, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pin", action="store_true", help="sim on CPU 0, gateways on CPU 1")
    parser.add_argument(
        "--serve-hop", nargs=2, type=int, metavar=("UPSTREAM", "PORT"), help=argparse.SUPPRESS
    )  # the hop target's own process
    args = parser.parse_args()
    if args.serve_hop:
        uvloop.run(serve_hop(*args.serve_hop))
        return
    sim_cpu, gw_cpu = (
        (0, 1) if args.pin and os.cpu_count() and os.cpu_count() >= 2 else (None, None)
    )
    slots = args.concurrency * 2
    sim_port = free_port()
    procs = [
        start(
            [
                sys.executable,
                "-m",
                "llmfleet.engines.sim",
                "--port",
                str(sim_port),
                "--model-name",
                "chat",
                "--ttft",
                "0",
                "--tps",
                "0",
                "--slots",
                str(slots),
            ],
            sim_cpu,
        )
    ]
    targets = {"direct": f"http://127.0.0.1:{sim_port}/v1/chat/completions"}
    try:
        hop_port = free_port()
        hop = [sys.executable, __file__, "--serve-hop", str(sim_port), str(hop_port)]
        procs.append(start(hop, gw_cpu))
        targets["hop"] = f"http://127.0.0.1:{hop_port}/v1/chat/completions"
        for name, retries in (("resume", {}), ("plain", {"resume_non_streaming": False})):
            port = free_port()
            snap = snapshot_file(sim_port, slots, retries=retries)
            procs.append(
                start(
                    [
                        sys.executable,
                        "-m",
                        "llmfleet.gateway",
                        "--environment",
                        "bench",
                        "--port",
                        str(port),
                        "--static-snapshot",
                        str(snap),
                    ],
                    gw_cpu,
                )
            )
            targets[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
        time.sleep(0.3)
        before = os.getloadavg()[0]
        rounds = uvloop.run(measure(targets, args))
        report(rounds, args, (before, os.getloadavg()[0]))
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
