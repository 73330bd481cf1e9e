"""Long load runs say how they are getting on: a line every few seconds with the side,
the level, the requests answered so far and the time spent (bench and validate print them)."""

from __future__ import annotations

import re

from llmfleet.engines.sim.runtime import SimConfig
from llmfleet.engines.sim.testing import serve_sim
from llmfleet.spec.validation import SpeedSuiteSpec
from llmfleet.validate.runner import ask_cases, measure_speed
from llmfleet.validate.suites import Case

LINE = re.compile(r"^(\w+) (c\d+) round (\d)/2: (\d+) requests answered, (\d+\.\d) s of 0.5 s$")


async def test_measure_speed_reports_each_level_while_it_runs() -> None:
    """Two 0.5 s rounds of c2 on each side, a line every 0.1 s: several lines per side,
    their counts never going down within a round, the last round's last line at its end."""
    config = SimConfig(model_name="m", slots=8, ttft=0.01, tps=200)
    lines: list[str] = []
    async with serve_sim(config) as production, serve_sim(config) as candidate:
        suite = SpeedSuiteSpec(concurrency=(2,), duration_s=1.0, rounds=2, warmup_s=0.1,
                               max_tokens=4)  # fmt: skip
        await measure_speed(
            {"production": production.url, "candidate": candidate.url},
            model="m",
            suite=suite,
            progress=lines.append,
            every_s=0.1,
        )
    ticks = [m.groups() for m in map(LINE.match, lines) if m]
    for side in ("production", "candidate"):
        mine = [t for t in ticks if t[0] == side]
        assert len(mine) >= 4, f"{side}: {lines}"
        for number in ("1", "2"):
            counts = [int(t[3]) for t in mine if t[2] == number]
            assert counts == sorted(counts) and counts[-1] > 0, lines
    assert any(line.startswith("warming up") for line in lines), lines


async def test_quality_cases_report_each_answer() -> None:
    config = SimConfig(model_name="m", slots=2, ttft=0.0, tps=1000)
    lines: list[str] = []
    cases = [Case(name=f"case-{n}", prompt="hi", max_tokens=2) for n in range(3)]
    async with serve_sim(config) as server:
        await ask_cases(server.url, "m", cases, progress=lines.append, side="candidate")
    assert lines == [f"quality: candidate answered {n} of 3 cases" for n in (1, 2, 3)]
