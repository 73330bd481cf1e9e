"""The mutable side of one sim process: slots, queue, clock, faults, counters.

``SimRuntime`` is owned by the aiohttp app (never a module global) and is the
only place the sim waits: every delay is an ``asyncio.sleep`` measured on the
event loop's clock, so tests can reason about ordering rather than wall time.
The process exit used by the crash faults is injected so in-process tests can
observe a crash without ending pytest.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from llmfleet.engines.sim.faults import Faults
from llmfleet.engines.sim.metrics import SimMetrics
from llmfleet.engines.sim.prefix_cache import PrefixCache

ExitProcess = Callable[[int, str], None]
"""Ends the process with an exit code after saying why; ``os._exit`` in production."""


def exit_hard(code: int, reason: str) -> None:
    """Die at once, like a real engine crash: no cleanup, connections cut mid-stream."""
    sys.stderr.write(f"sim engine: {reason}; exiting with code {code}\n")
    sys.stderr.flush()
    os._exit(code)


@dataclass(frozen=True)
class SimConfig:
    """Settings fixed for the life of the process (faults change live, these don't)."""

    model_name: str = "sim"
    version: str = "1.2.0"
    slots: int = 4
    context: int = 2048
    ttft: float = 0.0
    tps: float = 0.0
    prefill_tps: float = 0.0
    output_tokens: int | None = None
    echo_prefill: bool = True
    seed: int = 0
    embedding_dim: int = 64
    prefix_cache_blocks: int = 16384


class SimRuntime:
    """Slots with a FIFO queue, timing, the process-wide token count and its faults."""

    def __init__(
        self,
        config: SimConfig,
        faults: Faults,
        *,
        exit_process: ExitProcess = exit_hard,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.faults = faults
        self.running = 0
        self.waiting = 0
        self.tokens_emitted = 0
        self.started_at = 0.0
        self.started_wall = wall_clock()
        self.prefix_cache = PrefixCache(capacity_blocks=config.prefix_cache_blocks)
        self.metrics = SimMetrics(running=lambda: self.running, waiting=lambda: self.waiting)
        self.wall_clock = wall_clock
        self._exit_process = exit_process
        self._slots = asyncio.Semaphore(config.slots)
        self._unhang = asyncio.Event()
        self._rng = random.Random(config.seed)  # noqa: S311 - a fault schedule, not crypto
        self._id_prefix = os.urandom(6).hex()
        self._next_id = 0

    @staticmethod
    def now() -> float:
        """The event loop's clock: the one clock every sim delay is measured on."""
        return asyncio.get_running_loop().time()

    def mark_started(self) -> None:
        """Start the --load-time window now (called when the app starts serving)."""
        self.started_at = self.now()
        self.started_wall = self.wall_clock()

    def loading(self) -> bool:
        return self.now() < self.started_at + self.faults.load_time

    def set_faults(self, faults: Faults) -> None:
        """Apply new fault settings; streams hung by the old settings re-check theirs."""
        self.faults = faults
        self._unhang.set()
        self._unhang = asyncio.Event()
        if faults.fail_start:
            # a little later, so the answer to the POST still reaches the caller
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, self._exit_process, 1, "fail_start set live")

    def roll_error(self) -> bool:
        """Whether this request gets a simulated 500 (seeded, so runs repeat)."""
        rate = self.faults.error_rate
        return rate > 0 and self._rng.random() < rate

    def new_id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}-{self._id_prefix}{self._next_id:x}"

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of --slots sequences, queueing FIFO; freed even on cancellation."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()

    async def prefill(self, uncached_tokens: int) -> None:
        """Wait out time to first token: base --ttft plus prefill of the uncached prompt."""
        delay = self.config.ttft
        if self.config.prefill_tps > 0:
            delay += uncached_tokens / self.config.prefill_tps
        if delay > 0:
            await asyncio.sleep(delay)

    def pacer(self, arrived: float, total: int) -> TokenPacer:
        """Releases one response's ``total`` tokens at --tps, honouring hang and crash."""
        return TokenPacer(self, arrived, total)

    def can_burst(self) -> bool:
        """True when tokens need no pacing or checks: emit them all at once."""
        faults = self.faults
        no_faults = faults.crash_after_tokens is None and faults.hang_after_tokens is None
        return self.config.tps <= 0 and no_faults

    def after_tokens(self, count: int = 1) -> None:
        """Count emitted tokens process-wide; crash when --crash-after-tokens is reached."""
        self.tokens_emitted += count
        self._crash_if_due()

    async def wait_while_hung(self) -> None:
        """Block while --hang-after-tokens is reached; a faults change re-checks it."""
        self._crash_if_due()
        while self._hung():
            await self._unhang.wait()
            self._crash_if_due()

    def _hung(self) -> bool:
        limit = self.faults.hang_after_tokens
        return limit is not None and self.tokens_emitted >= limit

    def _crash_if_due(self) -> None:
        limit = self.faults.crash_after_tokens
        if limit is not None and self.tokens_emitted >= limit:
            self._exit_process(1, f"crash after {self.tokens_emitted} tokens (crash_after_tokens)")


class TokenPacer:
    """Releases the tokens of one response when due, and reports its metrics.

    Token 0 is due at once (time to first token was spent in prefill); token
    ``i`` at ``i / tps`` seconds after it, measured on the loop clock so a slow
    write does not accumulate drift.
    """

    def __init__(self, sim: SimRuntime, arrived: float, total: int) -> None:
        self._sim = sim
        self._arrived = arrived
        self._total = total
        self._first_at: float | None = None
        self.released = 0

    async def release(self, index: int) -> None:
        """Return when token ``index`` may be emitted."""
        sim = self._sim
        await sim.wait_while_hung()
        if self._first_at is None:
            self._first_at = sim.now()
            sim.metrics.time_to_first_token.observe(self._first_at - self._arrived)
        elif sim.config.tps > 0:
            delay = self._first_at + index / sim.config.tps - sim.now()
            if delay > 0:
                await asyncio.sleep(delay)
        self.released = index + 1

    def finish(self) -> None:
        """Count the tokens released, once, however the response ended."""
        sim = self._sim
        if self._total == 0:  # an empty answer is complete at once: that is its "first token"
            sim.metrics.time_to_first_token.observe(sim.now() - self._arrived)
        sim.metrics.generation_tokens.inc(self.released)


RUNTIME = web.AppKey("sim_runtime", SimRuntime)
"""Where the app keeps its runtime: ``request.app[RUNTIME]``."""
