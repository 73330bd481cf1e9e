"""llmfleet's own load generator: streaming chat requests through a gateway.

Closed loop: ``concurrency`` workers each send the next request as soon as the
last one ends. Open loop: arrivals follow a Poisson process at ``rate`` per
second whatever the server does, so a slow server builds a queue (as real users
would). Times come from the event loop's clock. Side effects: HTTP only.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from llmfleet.validate.stats import RequestSample

OnSample = Callable[[RequestSample], None]
"""told of each request as it ends (progress counts them)"""


@dataclass(frozen=True)
class Target:
    """Where and what to ask: an OpenAI-compatible base URL and a request body."""

    base_url: str
    model: str
    prompt: str
    max_tokens: int = 32
    api_key: str | None = None
    timeout_s: float = 120.0

    def body(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt}],
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},  # the prompt's tokens, for costs
        }

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


async def send_one(session: aiohttp.ClientSession, target: Target) -> RequestSample:
    """One streaming request; any failure is a sample with ``ok=False``, never raised."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    times: list[float] = []
    usage: dict[str, Any] = {}
    try:
        async with session.post(
            f"{target.base_url}/v1/chat/completions", json=target.body(), headers=target.headers()
        ) as response:
            if response.status != 200:
                text = (await response.text())[:200]
                return RequestSample(ok=False, error=f"HTTP {response.status}: {text}")
            async for raw in response.content:
                if _has_token(raw, usage):
                    times.append(loop.time() - start)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return RequestSample(ok=False, error=f"{type(exc).__name__}: {exc}")
    if not times:
        return RequestSample(ok=False, error="the stream ended without a token")
    return RequestSample(
        ok=True,
        ttft=times[0],
        e2e=loop.time() - start,
        token_times=tuple(times),
        output_tokens=len(times),
        input_tokens=_count(usage.get("prompt_tokens")),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _has_token(raw: bytes, usage: dict[str, Any]) -> bool:
    """Whether an SSE line carries generated text (one chunk is about one token).

    A chunk with ``usage`` (the last one, asked for with ``include_usage``) fills ``usage``."""
    line = raw.strip()
    if not line.startswith(b"data:") or line == b"data: [DONE]":
        return False
    try:
        chunk = json.loads(line[5:])
    except ValueError:
        return False
    if "error" in chunk:
        raise ValueError(str(chunk["error"])[:200])
    if isinstance(chunk.get("usage"), dict):
        usage.update(chunk["usage"])
    choices = chunk.get("choices") or [{}]
    delta = choices[0].get("delta") or {}
    return bool(delta.get("content"))


def _session(target: Target, connections: int) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=target.timeout_s)
    return aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=max(connections, 1))
    )


def _ignore(_sample: RequestSample) -> None:
    return None


async def closed_loop(
    target: Target, *, concurrency: int, duration_s: float, on_sample: OnSample = _ignore
) -> list[RequestSample]:
    """``concurrency`` workers back to back until ``duration_s`` has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    samples: list[RequestSample] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        while loop.time() < deadline:
            samples.append(await send_one(session, target))
            on_sample(samples[-1])

    async with _session(target, concurrency) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return samples


async def open_loop(
    target: Target,
    *,
    rate: float,
    duration_s: float,
    seed: int = 0,
    on_sample: OnSample = _ignore,
) -> list[RequestSample]:
    """Poisson arrivals at ``rate`` per second for ``duration_s``; waits for every answer."""
    loop = asyncio.get_running_loop()
    arrivals = random.Random(seed)  # noqa: S311 - load shape, not security
    deadline = loop.time() + duration_s

    async def one(session: aiohttp.ClientSession) -> RequestSample:
        sample = await send_one(session, target)
        on_sample(sample)
        return sample

    async with _session(target, 1000) as session:
        tasks: list[asyncio.Task[RequestSample]] = []
        while loop.time() < deadline:
            tasks.append(asyncio.create_task(one(session)))
            await asyncio.sleep(arrivals.expovariate(rate))
        return list(await asyncio.gather(*tasks))


async def chat_once(
    session: aiohttp.ClientSession, base_url: str, body: dict[str, Any], api_key: str | None = None
) -> dict[str, Any]:
    """One non-streaming ``chat.completion`` body; raises ``aiohttp.ClientError`` on failure."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with session.post(f"{base_url}/v1/chat/completions", json=body, headers=headers) as r:
        if r.status != 200:
            raise aiohttp.ClientResponseError(
                r.request_info, (), status=r.status, message=(await r.text())[:200]
            )
        data: dict[str, Any] = await r.json()
    return data
