"""Cost of observability on the gateway's hot path: on against off, in one run.

    .venv/bin/python bench/observe_overhead.py [--rounds 20] [--seconds 1.5] [--concurrency 32]

Starts one sim process (answers at once) and two gateway processes in front of
it from the same static snapshot:

- ``off``: no tracing, no request logs (the gateway's Prometheus counters are
  always on: they existed before this work and routing reads them);
- ``on``: OpenTelemetry tracing exported over OTLP/HTTP to a local receiver
  (``--sample-ratio`` of requests get a request, a routing and an upstream
  span; every request sends ``traceparent`` to the engine), one JSON
  request-log line per request,
  and ``/metrics`` scraped every second as Prometheus would.

Rounds alternate the order of the two; the verdict is the median of the
per-round throughput ratios on/off (goal: under 5% loss). Each round also
reads each gateway's CPU time per request from /proc (its span exporter
process included), which says what the observability costs with less noise
than the rate (from the scheduler's schedstat), and the quartiles of the
per-round ratios show the spread. ``--on none`` runs two identical gateways: the
noise floor of this machine. The stand-in collector runs in a process of its
own, as a real one would: in this one its work would slow the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from gateway_overhead import free_port, snapshot_file, start, throughput

GOAL_LOSS = 0.05


class Sink(BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector: accepts every export, counts bytes."""

    received = 0

    def do_POST(self) -> None:
        Sink.received += len(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def collector(port: int) -> None:
    """The collector process: serve until SIGTERM, then print the bytes received."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
    print("ready", flush=True)
    try:
        server.serve_forever()
    finally:
        print(Sink.received, flush=True)


def start_collector() -> tuple[int, subprocess.Popen[str]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--collector", str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    return port, proc


def gateway(sim_port: int, slots: int, env: dict[str, str],
            log: Path) -> tuple[str, subprocess.Popen[str]]:
    """A gateway process whose JSON logs (stderr) go to ``log``."""
    port = free_port()
    level = "INFO" if env.get("LLMFLEET_REQUEST_LOGS") == "1" else "WARNING"
    argv = [sys.executable, "-m", "llmfleet.gateway", "--environment", "bench", "--port",
            str(port), "--static-snapshot", str(snapshot_file(sim_port, slots)),
            "--log-level", level]
    with log.open("w") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env={**os.environ, **env})
    assert proc.stdout is not None
    if "listening" not in proc.stdout.readline():
        raise SystemExit(f"the gateway did not start; see {log}")
    return f"http://127.0.0.1:{port}", proc


async def scrape_every_second(base: str, stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(base + "/metrics") as response:
                await response.read()
            await asyncio.sleep(1.0)


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU time of a process, all its threads included (and with ``children``, of its
    live child processes: the gateway's span exporter). From the scheduler's own
    count (``schedstat``, nanoseconds), not the sampled clock ticks of ``stat``."""
    used = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        used += int((task / "schedstat").read_text().split()[0]) / 1e9
        if children:
            for child in (task / "children").read_text().split():
                used += cpu_seconds(int(child), children=True)
    return used


async def measure(
    targets: dict[str, str], pids: dict[str, int], args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Per round and gateway: requests/s, the gateway's CPU µs per request, and the part
    of it spent in its span exporter process."""
    rps: dict[str, list[float]] = {name: [] for name in targets}
    cpu: dict[str, list[float]] = {name: [] for name in targets}
    child: dict[str, list[float]] = {name: [] for name in targets}
    stop = asyncio.Event()
    scraper = asyncio.create_task(scrape_every_second(targets["on"], stop)
                                  if "scrape" in args.on else stop.wait())
    for index in range(args.rounds):
        order = list(targets) if index % 2 == 0 else list(reversed(targets))
        for name in order:
            url = targets[name] + "/v1/chat/completions"
            before = cpu_seconds(pids[name], children=True)
            own = cpu_seconds(pids[name])
            rps[name].append(await throughput(url, args.concurrency, args.seconds))
            used = cpu_seconds(pids[name], children=True) - before
            done = rps[name][-1] * args.seconds
            cpu[name].append(used / done * 1e6)
            child[name].append((used - (cpu_seconds(pids[name]) - own)) / done * 1e6)
        print(f"  round {index + 1}: " + ", ".join(
            f"{n} {rps[n][-1]:.0f} req/s {cpu[n][-1]:.0f} µs CPU/req"
            f" ({child[n][-1]:.0f} in the span exporter)" for n in targets),
            flush=True)
    stop.set()
    await scraper
    return rps, cpu, child


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sample-ratio", type=float, default=0.1,
                        help="share of requests traced (the spec's default is 0.1)")
    parser.add_argument("--on", default="tracing,logs,scrape",
                        help="what the 'on' gateway has: tracing, logs, scrape (none: A/A)")
    parser.add_argument("--collector", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.collector:
        collector(args.collector)
        return
    collector_port, collector_proc = start_collector()
    slots = args.concurrency * 2
    sim_port = free_port()
    procs = [start([sys.executable, "-m", "llmfleet.engines.sim", "--port", str(sim_port),
                    "--model-name", "chat", "--ttft", "0", "--tps", "0", "--slots", str(slots)],
                   None)]
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        off, proc = gateway(sim_port, slots, {"LLMFLEET_REQUEST_LOGS": "0"}, logs / "gw-off.log")
        procs.append(proc)
        parts = set(args.on.split(","))
        on_env = {"LLMFLEET_REQUEST_LOGS": "1" if "logs" in parts else "0"}
        if "tracing" in parts:
            on_env["LLMFLEET_OTLP_ENDPOINT"] = f"http://127.0.0.1:{collector_port}"
            on_env["LLMFLEET_TRACE_SAMPLE_RATIO"] = str(args.sample_ratio)
        on, proc = gateway(sim_port, slots, on_env, logs / "gw-on.log")
        procs.append(proc)
        time.sleep(0.3)
        rps, cpu, child = uvloop.run(measure({"off": off, "on": on},
                                      {"off": procs[1].pid, "on": procs[2].pid}, args))
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        time.sleep(0.5)  # the span exporter, its input closed, sends what it has left
        collector_proc.terminate()
        received, _ = collector_proc.communicate()
    ratios = [a / b for a, b in zip(rps["on"], rps["off"], strict=True)]
    ratio = statistics.median(ratios)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratio] * 3
    lines = sum(1 for _ in (logs / "gw-on.log").open()) if (logs / "gw-on.log").exists() else 0
    print(f"\nmedian req/s: off {statistics.median(rps['off']):.0f}, "
          f"on {statistics.median(rps['on']):.0f}; on/off {ratio:.3f} "
          f"(loss {(1 - ratio) * 100:.1f}%, goal < {GOAL_LOSS * 100:.0f}%): "
          f"{'PASS' if 1 - ratio < GOAL_LOSS else 'FAIL'}; "
          f"per-round on/off quartiles {quartiles[0]:.3f} to {quartiles[2]:.3f}")
    cpu_ratio = statistics.median(a / b for a, b in zip(cpu["on"], cpu["off"], strict=True))
    print("gateway CPU per request (its span exporter included): "
          f"off {statistics.median(cpu['off']):.0f} µs, "
          f"on {statistics.median(cpu['on']):.0f} µs "
          f"({statistics.median(child['on']):.0f} µs in its span exporter); on/off {cpu_ratio:.3f} "
          "(the cost itself, less noisy than the rate)")
    print(f"OTLP bytes received {received.strip()}; request-log lines {lines}")


if __name__ == "__main__":
    main()
