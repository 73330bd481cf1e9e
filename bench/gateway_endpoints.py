"""The gateway following EndpointSlices: many endpoints, and endpoints that come and go.

    .venv/bin/python bench/gateway_endpoints.py [--rounds 3] [--seconds 3] [--concurrency 64]
        [--many 1000] [--churn-seconds 10] [--churn-rate 100]

Processes: the fake API server (tests/backends/kubernetes/fake_api.py), one sim
process answering at once (ttft 0, tps 0) on many loopback addresses, one port
(each address is a pod: 127.1.X.Y), and a gateway started as a cluster starts it
(``--kubernetes-config services.json --kubernetes-api URL``), which lists and
watches the Service's EndpointSlices (100 endpoints a slice, as the EndpointSlice
controller cuts them).

1. Endpoints (figure 2 of issue 16): p50 latency and requests/s at concurrency
   ``--concurrency`` for ``--seconds``, direct to one sim address (the baseline),
   through the gateway with 10 ready endpoints and with ``--many``; rounds
   interleaved, medians. Goal: ``--many`` at most 10% worse than 10.
2. Churn (figure 3): under the same load over 10 stable endpoints, each second
   ``--churn-rate`` new endpoints become ready (their address listens first, as a
   pod is ready before its endpoint is), the previous second's become terminating,
   and the ones before that are removed and their addresses stop listening (the
   pod exited after its drain). Reported: failed requests / total (goal 0), against
   the same load without churn (baseline); and the time from a slice write that
   makes an endpoint ready to the first request the sim sees on that address,
   against the time the API server's own watch takes to tell a watcher of the same
   write (the baseline: what no gateway can beat).
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
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
NS = "bench"
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
SLICE_SIZE = 100
STABLE = 10
SERVICE = {"model": "sim:tiny", "engine": {"kind": "sim", "version": "1.2.0"}, "slots": 64,
           "admission": {"queue_size": 4096}}  # fmt: skip


def address(index: int) -> str:
    return f"127.1.{index // 250}.{index % 250 + 1}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the many-address sim (a process of its own: --serve-sims) -------------------------
async def serve_sims(port: int) -> None:
    """One sim app on many addresses; stdin says ``open ADDR`` / ``close ADDR`` /
    ``report`` (prints {address: monotonic time of its first request} as JSON)."""
    from aiohttp import web

    from llmfleet.engines.sim.faults import Faults
    from llmfleet.engines.sim.runtime import SimConfig
    from llmfleet.engines.sim.server import create_app

    first: dict[str, float] = {}

    @web.middleware
    async def note_first(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/chat"):
            local = request.transport.get_extra_info("sockname")[0] if request.transport else ""
            first.setdefault(local, time.monotonic())
        return await handler(request)  # type: ignore[no-any-return]

    app = create_app(SimConfig(model_name="chat", slots=4096, ttft=0.0, tps=0.0), Faults())
    app.middlewares.append(note_first)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    sites: dict[str, web.TCPSite] = {}
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("sims listening", flush=True)
    while line := (await reader.readline()).decode().split():
        verb, *rest = line
        if verb == "open":
            for host in rest:
                sites[host] = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
                await sites[host].start()
        elif verb == "close":
            for host in rest:
                if site := sites.pop(host, None):
                    await site.stop()
        elif verb == "report":
            print(json.dumps(first), flush=True)
            continue
        print("ok", flush=True)


class Sims:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-sims", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdin is not None
        assert "listening" in self.proc.stdout.readline()

    def say(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


# --- slices --------------------------------------------------------------------------
def slice_body(name: str, endpoints: dict[int, str], port: int) -> dict[str, Any]:
    """A slice of Service chat; ``endpoints`` maps an index to ready|terminating."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"kubernetes.io/service-name": "chat"}},
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [address(i)], "targetRef": {"kind": "Pod", "name": f"p{i}"},
                       "conditions": {"ready": state == "ready", "serving": True,
                                      "terminating": state == "terminating"}}
                      for i, state in sorted(endpoints.items())],
    }  # fmt: skip


class Api:
    """Writes slices to the fake API server (PATCH apply, as the slice controller's
    writes reach a watcher) and reads them back."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    def _path(self, name: str = "") -> str:
        base = f"{self.url}/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
        return f"{base}/{name}" if name else base

    async def put(self, body: dict[str, Any]) -> None:
        url = self._path(body["metadata"]["name"]) + "?fieldManager=endpointslice-controller"
        headers = {"Content-Type": "application/apply-patch+yaml"}
        async with self.session.patch(url, data=json.dumps(body), headers=headers) as resp:
            assert resp.status in (200, 201), await resp.text()

    async def delete(self, name: str) -> None:
        async with self.session.delete(self._path(name)) as resp:
            assert resp.status in (200, 404), await resp.text()

    async def set_endpoints(self, endpoints: dict[int, str], port: int) -> None:
        """Slices of up to 100 endpoints, by index; empty slices deleted."""
        by_slice: dict[int, dict[int, str]] = {}
        for index, state in endpoints.items():
            by_slice.setdefault(index // SLICE_SIZE, {})[index] = state
        for number, members in sorted(by_slice.items()):
            await self.put(slice_body(f"chat-{number}", members, port))


# --- load ----------------------------------------------------------------------------
class Load:
    """``concurrency`` workers posting BODY until stopped; latencies and failures."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url, self.concurrency = url, concurrency
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.running = True

    async def run(self, seconds: float) -> float:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                while self.running:
                    start = time.perf_counter()
                    try:
                        async with session.post(self.url, json=BODY) as resp:
                            await resp.read()
                            if resp.status != 200:
                                self.failures.append(str(resp.status))
                    except (aiohttp.ClientError, OSError) as exc:
                        self.failures.append(type(exc).__name__)
                    self.latencies.append(time.perf_counter() - start)

            start = time.perf_counter()
            tasks = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
            await asyncio.sleep(seconds)
            self.running = False
            await asyncio.gather(*tasks)
            return len(self.latencies) / (time.perf_counter() - start)


async def measure(url: str, args: argparse.Namespace) -> tuple[float, float]:
    """(p50 latency, requests/s) of one load run after a one-second warm-up."""
    await Load(url, args.concurrency).run(1.0)
    load = Load(url, args.concurrency)
    rate = await load.run(args.seconds)
    assert not load.failures, f"{url}: {len(load.failures)} failures: {load.failures[:5]}"
    return statistics.median(load.latencies), rate


async def wait_routable(url: str, count: int) -> None:
    """Until a request through the gateway succeeds, then a moment for the rest of the
    ``count`` endpoints' snapshot to settle (probes of new endpoints included)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(url, json=BODY) as resp:
                    if resp.status == 200:
                        await asyncio.sleep(1.0 + count / 1000)
                        return
            await asyncio.sleep(0.05)
    raise SystemExit(f"the gateway never routed to {count} endpoints")


# --- the two figures -----------------------------------------------------------------
async def endpoints_figure(api: Api, sims: Sims, gateway: str, args: argparse.Namespace) -> None:
    direct = f"http://{address(0)}:{sims.port}/v1/chat/completions"
    results: dict[str, list[tuple[float, float]]] = {"direct": [], "10": [], str(args.many): []}
    for round_index in range(args.rounds):
        order = [10, args.many] if round_index % 2 == 0 else [args.many, 10]
        results["direct"].append(await measure(direct, args))
        for count in order:
            await api.set_endpoints(dict.fromkeys(range(count), "ready"), sims.port)
            for number in range(count // SLICE_SIZE + 1, args.many // SLICE_SIZE + 1):
                await api.delete(f"chat-{number}")
            await wait_routable(gateway, count)
            results[str(count)].append(await measure(gateway, args))
        print(f"  round {round_index + 1}: " + ", ".join(
            f"{name} p50 {r[-1][0] * 1e3:.2f} ms {r[-1][1]:.0f} req/s"
            for name, r in results.items()), flush=True)  # fmt: skip
    p50 = {name: statistics.median(x[0] for x in r) for name, r in results.items()}
    rate = {name: statistics.median(x[1] for x in r) for name, r in results.items()}
    many = str(args.many)
    print(f"\nEndpoints (concurrency {args.concurrency}, {args.rounds} rounds, medians):")
    for name in results:
        added = (
            "" if name == "direct" else f"  added p50 {(p50[name] - p50['direct']) * 1e3:.2f} ms"
        )
        print(f"  {name:>7}: p50 {p50[name] * 1e3:.2f} ms  {rate[name]:.0f} req/s{added}")
    added_ratio = (p50[many] - p50["direct"]) / max(p50["10"] - p50["direct"], 1e-9)
    print(f"  {many} against 10 endpoints: added p50 x{added_ratio:.2f}, "
          f"req/s x{rate[many] / rate['10']:.2f} (goal: req/s >= x0.90)")  # fmt: skip


async def churn_figure(api: Api, sims: Sims, gateway: str, args: argparse.Namespace) -> None:
    stable = dict.fromkeys(range(STABLE), "ready")
    for number in range(1, args.many // SLICE_SIZE + 2):
        await api.delete(f"chat-{number}")
    await api.set_endpoints(stable, sims.port)
    await wait_routable(gateway, STABLE)
    quiet = Load(gateway, args.concurrency)
    quiet_rate = await quiet.run(args.churn_seconds)
    load = Load(gateway, args.concurrency)
    running = asyncio.create_task(load.run(args.churn_seconds))
    written, watched = await churn(api, sims, load, args)
    rate = await running
    first = json.loads(sims.say("report"))
    routed = [first[a] - t for a, t in written.items() if a in first]
    seen = [watched[a] - t for a, t in written.items() if a in watched]
    total, failed = len(load.latencies), len(load.failures)
    print(f"\nChurn ({args.churn_rate} endpoints added and removed a second, concurrency "
          f"{args.concurrency}, {args.churn_seconds:g} s):")  # fmt: skip
    print(f"  without churn (baseline): {len(quiet.failures)} failed / {len(quiet.latencies)}, "
          f"{quiet_rate:.0f} req/s")  # fmt: skip
    print(
        f"  with churn:               {failed} failed / {total}, {rate:.0f} req/s"
        f"  (goal: 0 failed){'  ' + str(sorted(set(load.failures))) if failed else ''}"
    )
    print(
        f"  endpoint ready -> first request on it: p50 {_ms(routed, 0.5)}, "
        f"p99 {_ms(routed, 0.99)} ({len(routed)} of {len(written)} new ones got one)"
    )
    print(f"  endpoint ready -> a watcher is told (baseline): p50 {_ms(seen, 0.5)}, "
          f"p99 {_ms(seen, 0.99)}")  # fmt: skip


def _ms(values: list[float], q: float) -> str:
    if len(values) < 2:
        return "-"
    return f"{statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1e3:.1f} ms"


async def churn(
    api: Api, sims: Sims, load: Load, args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, float]]:
    """Generations of ``churn_rate`` endpoints: ready, then terminating, then gone.
    Returns when each new endpoint's slice was written, and when a watcher saw it."""
    written: dict[str, float] = {}
    watched: dict[str, float] = {}
    watcher = asyncio.create_task(watch_ready(api, watched))
    endpoints = dict.fromkeys(range(STABLE), "ready")
    generations: list[list[int]] = []
    next_index = 1000
    while load.running:
        tick = time.monotonic()
        fresh = list(range(next_index, next_index + args.churn_rate))
        next_index += args.churn_rate
        await asyncio.to_thread(sims.say, "open " + " ".join(address(i) for i in fresh))
        if len(generations) >= 2:  # terminating for a second: those pods exit, then go
            gone = generations.pop(0)
            await asyncio.to_thread(sims.say, "close " + " ".join(address(i) for i in gone))
            for i in gone:
                endpoints.pop(i)
        if generations:
            endpoints.update(dict.fromkeys(generations[-1], "terminating"))
        endpoints.update(dict.fromkeys(fresh, "ready"))
        generations.append(fresh)
        written.update({address(i): time.monotonic() for i in fresh})
        await rewrite(api, endpoints, sims.port)
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    watcher.cancel()
    return written, watched


async def rewrite(api: Api, endpoints: dict[int, str], port: int) -> None:
    """Every slice anew (fresh indices land in new slices, emptied ones are deleted)."""
    by_slice: dict[int, dict[int, str]] = {}
    for index, state in endpoints.items():
        by_slice.setdefault(index // SLICE_SIZE, {})[index] = state
    live = getattr(api, "live", set())
    for number, members in sorted(by_slice.items()):
        await api.put(slice_body(f"chat-{number}", members, port))
    for number in live - set(by_slice):
        await api.delete(f"chat-{number}")
    api.live = set(by_slice)  # type: ignore[attr-defined]


async def watch_ready(api: Api, watched: dict[str, float]) -> None:
    """A watcher of the same slices: when it is told an address is ready."""
    url = api._path() + "?watch=true&labelSelector=kubernetes.io%2Fservice-name%3Dchat"
    async with api.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
        async for line in resp.content:
            body = json.loads(line)["object"]
            for endpoint in body.get("endpoints") or ():
                if endpoint["conditions"].get("ready"):
                    watched.setdefault(endpoint["addresses"][0], time.monotonic())


# --- processes -----------------------------------------------------------------------
def start_gateway(api_url: str, sim_port: int) -> tuple[subprocess.Popen[str], str]:
    config = {"environment": NS, "namespace": NS, "services": {"chat": {
        "spec": SERVICE, "endpoints": {"service": "chat", "port": sim_port}}}}  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "services.json"
    path.write_text(json.dumps(config))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmfleet.gateway", "--environment", NS, "--port", str(port),
         "--kubernetes-config", str(path), "--kubernetes-api", api_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening" not in line:
        raise SystemExit(f"the gateway did not start: {line}")
    return proc, f"http://127.0.0.1:{port}/v1/chat/completions"


def run(args: argparse.Namespace) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.backends.kubernetes.fake_api"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert server.stdout is not None
    api_url = server.stdout.readline().strip()
    sims = Sims(free_port())
    sims.say("open " + " ".join(address(i) for i in range(args.many)))
    gateway, url = start_gateway(api_url, sims.port)
    load_start = os.getloadavg()[0]
    try:
        asyncio.run(figures(api_url, sims, url, args))
    finally:
        gateway.terminate()
        gateway.wait(30)
        sims.close()
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    print(
        f"\nload average (1 min): {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} "
        "at the end (this machine's 2 CPUs run the client, gateway, sims and API server)"
    )


async def figures(api_url: str, sims: Sims, url: str, args: argparse.Namespace) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(api_url, session)
        await endpoints_figure(api, sims, url, args)
        await churn_figure(api, sims, url, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--many", type=int, default=1000)
    parser.add_argument("--churn-seconds", type=float, default=10.0)
    parser.add_argument("--churn-rate", type=int, default=100)
    parser.add_argument("--serve-sims", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sims:
        asyncio.run(serve_sims(args.serve_sims))
        return
    run(args)


if __name__ == "__main__":
    main()
