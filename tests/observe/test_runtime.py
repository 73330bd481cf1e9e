"""The agent's Observer without processes: a faulty GPU alerts and shows in /metrics."""

from __future__ import annotations

import time

import aiohttp

from llmfleet.observe.gpu import NvmlReader
from llmfleet.observe.runtime import Observer
from tests.observe.fake_nvml import FakeGpu, FakeNvml


async def test_a_gpu_fault_fires_a_builtin_alert_and_reaches_the_endpoint() -> None:
    """No rule declared: an uncorrected ECC error still fires LlmfleetGpuUnhealthy."""
    faults: list[dict[str, str]] = []
    async with aiohttp.ClientSession() as session:
        observer = Observer(session=session, targets=list, clock=time.monotonic,
                            wall_clock=time.time, on_gpu_fault=faults.append,
                            gpu_reader=NvmlReader(nvml=FakeNvml([FakeGpu(ecc_uncorrected=1)])))
        await observer.configure("production", {}, {"metrics_port": None, "scrape_cache_s": 0})
        fired = await observer.evaluate()
        assert [(a.name, a.state) for a in fired] == [("LlmfleetGpuUnhealthy", "firing")]
        assert faults == [{"0": "1 uncorrected ECC error(s)"}]
        body = observer.alerts_json()
        assert body["gpu"]["available"] is True and body["alerts"][0]["state"] == "firing"
        text = await observer.scraper.render()
        assert 'llmfleet_gpu_healthy{gpu="0",uuid="GPU-0000",name="NVIDIA H200"} 0' in text
        assert 'alertname="LlmfleetGpuUnhealthy"' in text
        await observer.stop()
