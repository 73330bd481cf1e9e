"""Run the suites against live gateways; the I/O half of validation.

Production and candidate are measured in the same run and interleaved (A/B,
then B/A, round after round), so a noisy machine slows both alike and the
comparison stays fair. Runs take minutes, so they report as they go: a line at
each step and every ``every_s`` seconds (loop clock) while load runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from llmfleet.spec.validation import SpeedSuiteSpec
from llmfleet.validate.answers import Answer, read_answer
from llmfleet.validate.load import Target, chat_once, closed_loop, open_loop
from llmfleet.validate.stats import LoadSummary, RequestSample, merge_summaries
from llmfleet.validate.suites import Case

Progress = Callable[[str], None]
"""takes one line for a person to read (the CLI prints it)"""
EVERY_S = 2.0


def _quiet(_line: str) -> None:
    return None


@dataclass(frozen=True)
class Reply:
    text: str
    error: str = ""
    answer: Answer | None = None
    """the whole answer, with what an agent reports doing (``validate.answers``)"""


async def ask_cases(
    base_url: str,
    model: str,
    cases: Sequence[Case],
    *,
    api_key: str | None = None,
    progress: Progress = _quiet,
    side: str = "",
) -> list[Reply]:
    """Each case's answer, one request at a time (answers, not speed, are judged here);
    a progress line after each."""
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
                answer = read_answer(await chat_once(session, base_url, body, api_key))
                replies.append(Reply(answer.text, answer=answer))
            except (aiohttp.ClientError, TimeoutError, KeyError, TypeError, ValueError) as exc:
                replies.append(Reply("", f"request failed: {type(exc).__name__}: {exc}"))
            progress(f"quality: {side} answered {len(replies)} of {len(cases)} cases")
    return replies


def levels(suite: SpeedSuiteSpec) -> list[str]:
    """Level labels in run order: ``c1``, ``c4``, ... then ``r2.0`` for an open loop."""
    labels = [f"c{n}" for n in suite.concurrency]
    return labels + ([f"r{suite.rate:g}"] if suite.rate else [])


@dataclass
class _Ticker:
    """Counts one slice's requests and says so every ``every_s`` seconds."""

    progress: Progress
    heading: str
    seconds: float
    every_s: float
    answered: int = 0
    failed: int = 0

    def count(self, sample: RequestSample) -> None:
        if sample.ok:
            self.answered += 1
        else:
            self.failed += 1

    def say(self, elapsed: float) -> None:
        failed = f", {self.failed} failed" if self.failed else ""
        self.progress(
            f"{self.heading}: {self.answered} requests answered{failed}, "
            f"{elapsed:.1f} s of {self.seconds:g} s"
        )

    async def run(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.every_s)
            self.say(loop.time() - started)


async def _run_level(
    target: Target, label: str, seconds: float, scale: float = 1.0, ticker: _Ticker | None = None
) -> tuple[list[RequestSample], float]:
    """One slice of the level ``label``, its load times ``scale``; ``ticker`` is told."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    on_sample = ticker.count if ticker else (lambda _sample: None)
    ticking = asyncio.create_task(ticker.run(started)) if ticker else None
    try:
        if label.startswith("c"):
            concurrency = max(1, round(int(label[1:]) * scale))
            samples = await closed_loop(
                target, concurrency=concurrency, duration_s=seconds, on_sample=on_sample
            )
        else:
            rate = float(label[1:]) * scale
            samples = await open_loop(target, rate=rate, duration_s=seconds, on_sample=on_sample)
    finally:
        if ticking is not None:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
    elapsed = loop.time() - started
    if ticker:
        ticker.say(elapsed)
    return samples, elapsed


async def measure_speed(
    sides: Mapping[str, str],
    *,
    model: str,
    suite: SpeedSuiteSpec,
    api_key: str | None = None,
    scale: Mapping[str, float] | None = None,
    progress: Progress = _quiet,
    every_s: float = EVERY_S,
) -> dict[str, dict[str, LoadSummary]]:
    """Per side (name -> gateway URL) and level, the pooled summary of every round.

    ``scale`` multiplies a side's load (concurrency or rate) at every level: the
    same load per replica on sides with different replica counts. ``progress``
    hears of each slice every ``every_s`` seconds."""
    names = list(sides)
    scale = scale or {}
    results: dict[str, dict[str, LoadSummary]] = {name: {} for name in names}
    slice_s = suite.duration_s / suite.rounds
    warm_label = f"c{max(suite.concurrency)}"
    for name, url in sides.items():  # a cold replica's first answers are not its speed
        progress(f"warming up {name} ({warm_label} for {suite.warmup_s:g} s, not measured)")
        target = Target(url, model, suite.prompt, max_tokens=suite.max_tokens, api_key=api_key)
        await _run_level(target, warm_label, suite.warmup_s, scale.get(name, 1))
    for label in levels(suite):
        parts: dict[str, list[tuple[list[RequestSample], float]]] = {n: [] for n in names}
        for number in range(suite.rounds):
            order = names if number % 2 == 0 else names[::-1]
            for name in order:
                target = Target(
                    sides[name], model, suite.prompt, max_tokens=suite.max_tokens, api_key=api_key
                )
                heading = f"{name} {label} round {number + 1}/{suite.rounds}"
                ticker = _Ticker(progress, heading, slice_s, every_s)
                parts[name].append(
                    await _run_level(target, label, slice_s, scale.get(name, 1), ticker)
                )
        for name in names:
            results[name][label] = merge_summaries(label, parts[name])
    return results
