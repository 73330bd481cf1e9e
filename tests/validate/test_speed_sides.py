"""The speed suite against two real (in-process sim) engines with different replica counts."""

from __future__ import annotations

import asyncio

from llmfleet.engines.sim.runtime import SimConfig
from llmfleet.engines.sim.testing import serve_sim
from llmfleet.spec.validation import GateSpec, SpeedSuiteSpec
from llmfleet.validate.gate import Evidence, SideMetrics, judge_gate, passed
from llmfleet.validate.runner import measure_speed
from llmfleet.validate.stats import RequestSample, summarize


async def test_production_with_twice_the_replicas_gets_twice_the_load() -> None:
    """Staging with 1 replica against production with 2: the same load per replica,
    so production runs each level (and its warm-up) at twice the concurrency."""
    config = SimConfig(model_name="m", slots=16, ttft=0.02, tps=200)
    async with serve_sim(config) as production, serve_sim(config) as candidate:
        peaks = {"production": 0, "candidate": 0}

        async def watch() -> None:
            while True:
                peaks["production"] = max(peaks["production"], production.runtime.running)
                peaks["candidate"] = max(peaks["candidate"], candidate.runtime.running)
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        suite = SpeedSuiteSpec(
            concurrency=(3,), duration_s=0.6, rounds=1, warmup_s=0.2, max_tokens=6
        )
        result = await measure_speed(
            {"production": production.url, "candidate": candidate.url},
            model="m",
            suite=suite,
            scale={"production": 2.0},
        )
        watcher.cancel()
    assert peaks == {"production": 6, "candidate": 3}
    assert set(result["production"]) == set(result["candidate"]) == {"c3"}
    assert result["production"]["c3"].errors == result["candidate"]["c3"].errors == 0


def test_throughput_is_compared_per_replica_when_the_counts_differ() -> None:
    """60 tok/s from 1 staging replica against 100 from 2 in production is 1.2x per replica."""

    def side(tps: float, replicas: int) -> SideMetrics:
        sample = RequestSample(ok=True, ttft=0.1, e2e=0.2, token_times=(0.1,), output_tokens=1)
        return SideMetrics(
            1.0, {"c4": summarize("c4", [sample] * 30, duration_s=30 / tps)}, replicas
        )

    verdicts = judge_gate(GateSpec(), Evidence(side(60, 1), side(100, 2)))
    throughput = next(v for v in verdicts if v.check.startswith("throughput"))
    assert throughput.check == "throughput per replica / production @c4"
    assert abs((throughput.observed or 0) - 1.2) < 1e-9
    assert passed(verdicts)
    same = judge_gate(GateSpec(), Evidence(side(60, 2), side(100, 2)))
    assert not passed(same)
    assert any(v.check == "throughput / production @c4" and not v.passed for v in same)
