"""Run the suites against live gateways; the I/O half of validation.

Production and candidate are measured in the same run and interleaved (A/B,
then B/A, round after round), so a noisy machine slows both alike and the
comparison stays fair.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from llmfleet.spec.validation import SpeedSuiteSpec
from llmfleet.validate.load import Target, chat_once, closed_loop, open_loop
from llmfleet.validate.stats import LoadSummary, RequestSample, merge_summaries
from llmfleet.validate.suites import Case


@dataclass(frozen=True)
class Reply:
    text: str
    error: str = ""


async def ask_cases(
    base_url: str, model: str, cases: Sequence[Case], *, api_key: str | None = None
) -> list[Reply]:
    """Each case's answer, one request at a time (answers, not speed, are judged here)."""
    replies = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for case in cases:
            body = {
                "model": model,
                "messages": case.chat_messages(),
                "max_tokens": case.max_tokens,
                "temperature": case.temperature,
            }
            try:
                replies.append(Reply(await chat_once(session, base_url, body, api_key)))
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
                replies.append(Reply("", f"request failed: {type(exc).__name__}: {exc}"))
    return replies


def levels(suite: SpeedSuiteSpec) -> list[str]:
    """Level labels in run order: ``c1``, ``c4``, ... then ``r2.0`` for an open loop."""
    labels = [f"c{n}" for n in suite.concurrency]
    return labels + ([f"r{suite.rate:g}"] if suite.rate else [])


async def _run_level(
    target: Target, label: str, seconds: float, scale: float = 1.0
) -> tuple[list[RequestSample], float]:
    """One slice of the level ``label``, its load times ``scale``."""
    started = time.monotonic()
    if label.startswith("c"):
        concurrency = max(1, round(int(label[1:]) * scale))
        samples = await closed_loop(target, concurrency=concurrency, duration_s=seconds)
    else:
        samples = await open_loop(target, rate=float(label[1:]) * scale, duration_s=seconds)
    return samples, time.monotonic() - started


async def measure_speed(
    sides: Mapping[str, str],
    *,
    model: str,
    suite: SpeedSuiteSpec,
    api_key: str | None = None,
    scale: Mapping[str, float] | None = None,
) -> dict[str, dict[str, LoadSummary]]:
    """Per side (name -> gateway URL) and level, the pooled summary of every round.

    ``scale`` multiplies a side's load (concurrency or rate) at every level: the
    same load per replica on sides with different replica counts."""
    names = list(sides)
    scale = scale or {}
    results: dict[str, dict[str, LoadSummary]] = {name: {} for name in names}
    slice_s = suite.duration_s / suite.rounds
    for name, url in sides.items():  # a cold replica's first answers are not its speed
        target = Target(url, model, suite.prompt, max_tokens=suite.max_tokens, api_key=api_key)
        await _run_level(target, f"c{max(suite.concurrency)}", suite.warmup_s, scale.get(name, 1))
    for label in levels(suite):
        parts: dict[str, list[tuple[list[RequestSample], float]]] = {n: [] for n in names}
        for number in range(suite.rounds):
            order = names if number % 2 == 0 else names[::-1]
            for name in order:
                target = Target(
                    sides[name], model, suite.prompt, max_tokens=suite.max_tokens, api_key=api_key
                )
                parts[name].append(await _run_level(target, label, slice_s, scale.get(name, 1)))
        for name in names:
            results[name][label] = merge_summaries(label, parts[name])
    return results
