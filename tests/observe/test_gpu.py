"""GPU health: the real NVML package without a driver, an honest fake NVML, the verdict,
and the agent taking replicas on a faulty GPU out of routing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from llmfleet.backends.base import ReplicaSpec, ReplicaState
from llmfleet.backends.local.supervisor import Managed
from llmfleet.engines.base import LaunchCommand, Probe
from llmfleet.engines.gpus import visible_gpus
from llmfleet.observe.gpu import (
    THROTTLE_REASONS,
    GpuReport,
    NvmlReader,
    gpu_samples,
    judge_gpu,
    unhealthy_gpus,
)
from llmfleet.observe.local import mark_gpu_faults
from llmfleet.observe.machine import MachineSampler, read_cpu_times, read_meminfo
from llmfleet.spec.observability import GpuLimits
from tests.observe.fake_nvml import FakeGpu, FakeNvml


def test_real_nvml_reports_no_gpu_here_or_real_readings_on_a_gpu() -> None:
    """The real nvidia-ml-py (a dependency, so never skipped): on a machine without the NVML
    library a clear 'no GPU'; on a GPU machine, readings that agree with what the driver says."""
    reader = NvmlReader()
    report = reader.read()
    reader.close()
    seen = visible_gpus()
    if not report.available:
        assert "no GPU" in report.reason and report.gpus == ()
        assert seen.count == 0 and seen.reason
        values = {s.name: s.value for s in gpu_samples(report, GpuLimits())}
        assert values == {"llmfleet_gpus_available": 0.0}
        return
    assert len(report.gpus) == seen.count > 0
    assert report.warning == "" or report.warning.startswith("XID errors are not watched")
    for index, gpu in enumerate(report.gpus):
        assert gpu.index == index and gpu.uuid.startswith("GPU-") and gpu.name
        assert 0 < gpu.temperature_c < 120 and gpu.power_w > 0
        assert 0 <= gpu.memory_used_bytes < gpu.memory_total_bytes
        assert 0.0 <= gpu.utilization_ratio <= 1.0
        assert gpu.ecc_uncorrected >= 0 and gpu.ecc_corrected >= 0
        assert set(gpu.throttle_reasons) <= set(THROTTLE_REASONS)
    samples = gpu_samples(report, GpuLimits())
    names = {s.name for s in samples}
    assert {"llmfleet_gpu_temperature_celsius", "llmfleet_gpu_healthy",
            "llmfleet_gpu_xid_errors_total", "llmfleet_gpu_throttled"} <= names


def test_an_old_drivers_calls_are_the_fallback() -> None:
    nvml = FakeNvml([FakeGpu(throttle=0x8)])
    nvml.old_driver = True
    gpu = NvmlReader(nvml=nvml).read().gpus[0]
    assert gpu.throttle_reasons == ("hw_slowdown",)
    assert gpu.memory_used_bytes == 41 * 2**30  # no v2 memory call: v1's figure


def test_missing_package_is_reported() -> None:
    reader = NvmlReader(nvml=None)
    reader._nvml = None  # as if nvidia-ml-py were not installed
    assert reader.read() == GpuReport(available=False,
                                      reason="the nvidia-ml-py package is not installed")


def test_fake_nvml_readings_and_xid_events() -> None:
    """Readings convert units; an XID event is counted and makes the GPU unhealthy."""
    nvml = FakeNvml([FakeGpu(), FakeGpu(throttle=0x40 | 0x4)])
    reader = NvmlReader(nvml=nvml)
    report = reader.read()
    assert report.available and len(report.gpus) == 2
    first = report.gpus[0]
    assert (first.uuid, first.power_w, first.utilization_ratio) == ("GPU-0000", 350.0, 0.87)
    assert first.memory_used_bytes == 40 * 2**30  # v2: without the driver's reservation
    assert report.gpus[1].throttle_reasons == ("sw_power_cap", "hw_thermal")
    assert unhealthy_gpus(report, GpuLimits()) == {}
    nvml.xids.append((1, 79))
    later = reader.read()
    assert later.gpus[1].xid_errors == 1 and later.gpus[1].last_xid == 79
    assert unhealthy_gpus(later, GpuLimits()) == {"1": "1 XID error(s), last XID 79"}
    reader.close()
    assert not nvml.initialised


def test_a_gpu_without_xid_events_is_read_and_says_xids_are_not_watched() -> None:
    nvml = FakeNvml([FakeGpu()])
    nvml.events_supported = False
    reader = NvmlReader(nvml=nvml)
    report = reader.read()
    assert report.available and report.gpus[0].xid_errors == 0
    assert report.warning == (
        "XID errors are not watched: NVML refused the event set (Not Supported)")
    assert nvml.freed == ["events"]  # the half-made event set is not leaked
    reader.close()
    assert nvml.freed == ["events"] and not nvml.initialised


@pytest.mark.parametrize(("gpu", "verdict"), [
    (FakeGpu(), None),
    (FakeGpu(ecc_uncorrected=2), "2 uncorrected ECC error(s)"),
    (FakeGpu(temperature=91), "temperature 91 C over the limit 85 C"),
])
def test_health_verdict(gpu: FakeGpu, verdict: str | None) -> None:
    reading = NvmlReader(nvml=FakeNvml([gpu])).read().gpus[0]
    assert judge_gpu(reading, GpuLimits(max_temperature_c=85)) == verdict


def managed(rid: str, *, gpus: int, visible: str | None = None) -> Managed:
    env = {"CUDA_VISIBLE_DEVICES": visible} if visible is not None else {}
    spec = ReplicaSpec(replica_id=rid, environment="p", service="chat", slot=0, runtime_hash="",
                       engine="vllm", engine_version="1", launch=LaunchCommand(("x",), env),
                       readiness=(), liveness=Probe("/health"), metrics_path="/metrics",
                       served_name="chat", config={"resources": {"gpus": gpus}})
    return Managed(spec=spec, port=1, argv=["x"], log_path=Path("/dev/null"),
                   state=ReplicaState.READY)


class FakeAgent:
    def __init__(self, *replicas: Managed) -> None:
        self.replicas = SimpleNamespace(processes={m.spec.replica_id: m for m in replicas})
        self.changes = 0

    def changed(self) -> None:
        self.changes += 1


def test_gpu_fault_marks_only_replicas_on_that_gpu_unhealthy_until_it_clears() -> None:
    cpu, on0, on1 = managed("cpu", gpus=0), managed("g0", gpus=1, visible="0"), managed(
        "g1", gpus=1, visible="1")
    agent = FakeAgent(cpu, on0, on1)
    mark_gpu_faults(agent, {"1": "1 XID error(s)"})  # type: ignore[arg-type]
    assert [m.state for m in (cpu, on0, on1)] == [ReplicaState.READY, ReplicaState.READY,
                                                  ReplicaState.UNHEALTHY]
    assert on1.hardware_fault == "1 XID error(s)" and agent.changes == 1
    mark_gpu_faults(agent, {})  # type: ignore[arg-type]
    assert on1.hardware_fault is None  # the liveness loop sets READY on its next probe


def test_machine_readings_from_proc_text(tmp_path: Path) -> None:
    assert read_cpu_times("cpu  10 0 10 70 10 0 0 0 0 0\n") == (20.0, 100.0)
    assert read_meminfo("MemTotal: 1000 kB\nMemAvailable: 250 kB\n") == (750 * 1024, 1000 * 1024)
    (tmp_path / "stat").write_text("cpu  10 0 10 80 0\n")
    (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemAvailable: 250 kB\n")
    sampler = MachineSampler(proc=tmp_path, disk_path=tmp_path)
    sampler.samples()
    (tmp_path / "stat").write_text("cpu  20 0 20 140 0\n")
    values = {s.name: s.value for s in sampler.samples()}
    assert values["llmfleet_machine_cpu_usage_ratio"] == pytest.approx(0.25)
    assert values["llmfleet_machine_disk_total_bytes"] > 0

