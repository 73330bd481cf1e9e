"""Cost of observability on the gateway's hot path: on against off, in one run.

    .venv/bin/python bench/observe_overhead.py [--rounds 150] [--seconds 0.2] [--concurrency 32]
        [--on tracing,logs,scrape] [--sample-ratio 0.1]

Starts one sim process (answers at once) and two gateway processes in front of
it from the same static snapshot:

- ``off``: no tracing, no request logs (the gateway's Prometheus counters are
  always on: they existed before this work and routing reads them);
- ``on``: OpenTelemetry tracing exported over OTLP/HTTP to a local receiver
  (``--sample-ratio`` of requests get a request, a routing and an upstream
  span; every request sends ``traceparent`` to the engine), one JSON
  request-log line per request,
  and ``/metrics`` scraped every second as Prometheus would.

A round is two short slices (``--seconds``, 0.2 s), one per gateway, in ABBA
order, over connections kept open the whole run: this 2-vCPU VM's speed drifts
by about 10% over seconds, and slices this short see nearly the same machine.
The verdict is the ratio of the two gateways' request rates over all rounds
(goal: under 5% loss), with a bootstrap 95% interval over rounds: a verdict is
firm only when that interval is on one side of the goal. The gateways' CPU
time per request (their span exporter included, from the scheduler's
schedstat) says what the observability costs with less noise than the rate;
the span exporter's share is printed apart. ``--on none`` runs two identical
gateways: the noise floor of this machine. ``--on tracing,scrape`` is the
issue's "metrics and tracing".
The stand-in collector runs in a process of its own, as a real one would: in
this one its work would slow the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from gateway_overhead import free_port, one, snapshot_file, start

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


async def slice_rate(session: aiohttp.ClientSession, url: str, concurrency: int,
                     seconds: float) -> tuple[int, float]:
    """``concurrency`` clients, each sending its next request as the last one is answered,
    for ``seconds``: (requests answered, seconds until the last of them)."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one(session, url)
            done += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done, time.perf_counter() - start


@dataclass
class Slices:
    """One gateway's slices (requests answered, seconds) and, over whole blocks, its CPU
    seconds (its span exporter included) and those of its span exporter alone."""

    done: list[int] = field(default_factory=list)
    took: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    child_s: float = 0.0

    def rate(self, rounds: Sequence[int] | None = None) -> float:
        """Requests per second over ``rounds`` (all by default)."""
        picked = range(len(self.done)) if rounds is None else rounds
        return sum(self.done[i] for i in picked) / sum(self.took[i] for i in picked)

    def cpu_us(self, seconds: float | None = None) -> float:
        """CPU µs per request (of ``seconds`` of CPU; all of it by default)."""
        return (self.cpu_s if seconds is None else seconds) / sum(self.done) * 1e6


async def measure(targets: dict[str, str], pids: dict[str, int], rounds: int,
                  args: argparse.Namespace, out: dict[str, Slices]) -> None:
    """``rounds`` more rounds of the two gateways into ``out``.

    A round is two short slices, one per gateway, in ABBA order, over connections
    kept open the whole block: the machine's speed drifts over seconds, and
    slices this short see nearly the same machine. CPU is counted over the whole
    block, so work a gateway defers past its slice (a batch of spans, a flush of
    log lines) is counted too."""
    stop = asyncio.Event()
    scraper = asyncio.create_task(scrape_every_second(targets["on"], stop)
                                  if "scrape" in args.on else stop.wait())
    sessions = {name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        limit=args.concurrency)) for name in targets}
    try:
        for name, url in targets.items():  # open the connections, warm both gateways up
            await slice_rate(sessions[name], url + "/v1/chat/completions",
                             args.concurrency, 1.0)
        cpu = {name: cpu_seconds(pid, children=True) for name, pid in pids.items()}
        own = {name: cpu_seconds(pid) for name, pid in pids.items()}
        for index in range(rounds):
            order = list(targets) if index % 4 in (0, 3) else list(reversed(targets))
            for name in order:
                url = targets[name] + "/v1/chat/completions"
                done, took = await slice_rate(sessions[name], url, args.concurrency,
                                              args.seconds)
                out[name].done.append(done)
                out[name].took.append(took)
        await asyncio.sleep(1.0)  # what the gateways deferred (spans, log lines) is done
        for name, pid in pids.items():
            used = cpu_seconds(pid, children=True) - cpu[name]
            out[name].cpu_s += used
            out[name].child_s += used - (cpu_seconds(pid) - own[name])
    finally:
        for session in sessions.values():
            await session.close()
        stop.set()
        await scraper


def ratio_interval(on: Slices, off: Slices, draws: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of the on/off rate ratio, resampling whole rounds (with a
    fixed seed): how far this run's ratio could be from the machine's, given its noise."""
    pick = random.Random(1)
    rounds = len(on.done)
    ratios = []
    for _ in range(draws):
        sample = pick.choices(range(rounds), k=rounds)
        ratios.append(on.rate(sample) / off.rate(sample))
    ratios.sort()
    return ratios[int(draws * 0.025)], ratios[int(draws * 0.975) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=0.2,
                        help="length of one gateway's slice of a round")
    parser.add_argument("--blocks", type=int, default=3,
                        help="the rounds are split into blocks, each with fresh gateway "
                        "processes (two identical processes can differ by a percent or two)")
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
    parts = set(args.on.split(","))
    on_env = {"LLMFLEET_REQUEST_LOGS": "1" if "logs" in parts else "0"}
    if "tracing" in parts:
        on_env["LLMFLEET_OTLP_ENDPOINT"] = f"http://127.0.0.1:{collector_port}"
        on_env["LLMFLEET_TRACE_SAMPLE_RATIO"] = str(args.sample_ratio)
    slices = {"off": Slices(), "on": Slices()}
    lines = 0
    try:
        for block in range(args.blocks):
            rounds = args.rounds // args.blocks + (block < args.rounds % args.blocks)
            off, off_proc = gateway(sim_port, slots, {"LLMFLEET_REQUEST_LOGS": "0"},
                                    logs / "gw-off.log")
            procs.append(off_proc)
            on, on_proc = gateway(sim_port, slots, on_env, logs / "gw-on.log")
            procs.append(on_proc)
            time.sleep(0.3)
            uvloop.run(measure({"off": off, "on": on}, {"off": off_proc.pid, "on": on_proc.pid},
                               rounds, args, slices))
            for proc in (on_proc, off_proc):
                proc.terminate()
                proc.wait()
                procs.remove(proc)
            lines += sum(1 for _ in (logs / "gw-on.log").open())
            print(f"  block {block + 1} of {args.blocks} ({rounds} rounds, fresh gateways): "
                  f"on/off {slices['on'].rate() / slices['off'].rate():.3f} so far", flush=True)
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        time.sleep(0.5)  # the span exporter, its input closed, sends what it has left
        collector_proc.terminate()
        received, _ = collector_proc.communicate()
    on_, off_ = slices["on"], slices["off"]
    ratio = on_.rate() / off_.rate()
    low, high = ratio_interval(on_, off_)
    print(f"\nreq/s over {args.rounds} rounds: off {off_.rate():.0f}, on {on_.rate():.0f}; "
          f"on/off {ratio:.3f} (loss {(1 - ratio) * 100:.1f}%, goal < {GOAL_LOSS * 100:.0f}%): "
          f"{'PASS' if 1 - ratio < GOAL_LOSS else 'FAIL'}; 95% interval of the loss "
          f"{(1 - high) * 100:.1f}% to {(1 - low) * 100:.1f}%")
    print("gateway CPU per request (its span exporter included): "
          f"off {off_.cpu_us():.0f} µs, on {on_.cpu_us():.0f} µs "
          f"({on_.cpu_us(on_.child_s):.0f} µs in its span exporter); "
          f"on/off {on_.cpu_us() / off_.cpu_us():.3f} (the cost itself, less noisy than the rate)")
    print(f"OTLP bytes received {received.strip()}; request-log lines {lines}")


if __name__ == "__main__":
    main()
