"""GPU health through NVML (the ``nvidia-ml-py`` package) and a pure verdict.

``NvmlReader`` calls NVML's real API; a machine without the library or driver
gets ``GpuReport(available=False, reason=...)`` and everything else still works.
``judge_gpu`` is pure: uncorrected ECC errors, XID errors or a temperature over
the spec's limit make a GPU unhealthy, and the agent then takes its replicas out
of routing (a GPU fault can leave an engine's ``/health`` green).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from llmfleet.observe.exposition import Sample
from llmfleet.spec.observability import GpuLimits

log = logging.getLogger(__name__)

THROTTLE_REASONS = {
    "gpu_idle": 0x1,
    "applications_clocks": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal": 0x20,
    "hw_thermal": 0x40,
    "hw_power_brake": 0x80,
}

CLOCK_EVENT_CALLS = (
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
)


@dataclass(frozen=True)
class GpuReading:
    index: int
    uuid: str
    name: str
    temperature_c: float
    power_w: float
    memory_used_bytes: int
    memory_total_bytes: int
    utilization_ratio: float
    ecc_uncorrected: int = 0
    ecc_corrected: int = 0
    xid_errors: int = 0
    last_xid: int | None = None
    throttle_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuReport:
    """``reason`` says why no GPU is read; ``warning`` what is read only in part."""

    available: bool
    reason: str = ""
    gpus: tuple[GpuReading, ...] = field(default=())
    warning: str = ""


def judge_gpu(gpu: GpuReading, limits: GpuLimits) -> str | None:
    """Why ``gpu`` is unhealthy, or None; pure."""
    if gpu.ecc_uncorrected > 0:
        return f"{gpu.ecc_uncorrected} uncorrected ECC error(s)"
    if gpu.xid_errors > 0:
        return f"{gpu.xid_errors} XID error(s), last XID {gpu.last_xid}"
    if gpu.temperature_c > limits.max_temperature_c:
        limit = limits.max_temperature_c
        return f"temperature {gpu.temperature_c:.0f} C over the limit {limit:.0f} C"
    return None


def unhealthy_gpus(report: GpuReport, limits: GpuLimits) -> dict[str, str]:
    """GPU index -> reason for every unhealthy GPU; pure."""
    verdicts = {str(g.index): judge_gpu(g, limits) for g in report.gpus}
    return {gpu: why for gpu, why in verdicts.items() if why is not None}


def _load_nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class NvmlReader:
    """Reads every GPU through ``nvml`` (the pynvml module, or a fake with its API)."""

    def __init__(self, nvml: Any = None) -> None:
        self._nvml: Any = nvml if nvml is not None else _load_nvml()
        self._ready = False
        self._reason = ""
        self._events: Any = None
        self._xid_warning = ""
        self._xids: dict[int, list[int]] = {}

    def _init(self) -> bool:
        if self._ready:
            return True
        if self._nvml is None:
            self._reason = "the nvidia-ml-py package is not installed"
            return False
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as exc:
            self._reason = f"no GPU: NVML is not usable here ({exc})"
            return False
        self._ready = True
        self._watch_xids()
        return True

    def _watch_xids(self) -> None:
        nvml = self._nvml
        try:
            self._events = nvml.nvmlEventSetCreate()
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                nvml.nvmlDeviceRegisterEvents(
                    handle, nvml.nvmlEventTypeXidCriticalError, self._events
                )
        except nvml.NVMLError as exc:  # XID events need a supported GPU, root on some drivers
            if self._events is not None:
                nvml.nvmlEventSetFree(self._events)
            self._events = None
            self._xid_warning = f"XID errors are not watched: NVML refused the event set ({exc})"
            log.warning("%s", self._xid_warning)

    def _drain_xids(self) -> None:
        nvml = self._nvml
        while self._events is not None:
            try:
                data = nvml.nvmlEventSetWait_v2(self._events, 0)
            except nvml.NVMLError:  # NVML_ERROR_TIMEOUT: nothing pending
                return
            index = nvml.nvmlDeviceGetIndex(data.device)
            self._xids.setdefault(index, []).append(int(data.eventData))

    def read(self) -> GpuReport:
        """Every GPU now; never raises for a machine without GPUs."""
        if not self._init():
            return GpuReport(available=False, reason=self._reason)
        nvml = self._nvml
        try:
            self._drain_xids()
            count = nvml.nvmlDeviceGetCount()
            gpus = tuple(self._read_one(i) for i in range(count))
        except nvml.NVMLError as exc:
            return GpuReport(available=False, reason=f"NVML failed: {exc}")
        if not gpus:
            return GpuReport(available=False, reason="NVML sees no GPU")
        return GpuReport(available=True, gpus=gpus, warning=self._xid_warning)

    def _read_one(self, index: int) -> GpuReading:
        nvml = self._nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = self._memory(handle)
        xids = self._xids.get(index, [])
        return GpuReading(
            index=index,
            uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
            name=_text(nvml.nvmlDeviceGetName(handle)),
            temperature_c=float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            power_w=nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
            memory_used_bytes=int(memory.used),
            memory_total_bytes=int(memory.total),
            utilization_ratio=nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0,
            ecc_uncorrected=self._ecc(handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
            ecc_corrected=self._ecc(handle, nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
            xid_errors=len(xids),
            last_xid=xids[-1] if xids else None,
            throttle_reasons=self._throttle(handle),
        )

    def _memory(self, handle: Any) -> Any:
        """Memory in use, as ``nvidia-smi`` counts it: the v2 call leaves out what the driver
        reserves (about 600 MiB on an idle H200, which v1 reports as used)."""
        nvml = self._nvml
        version = getattr(nvml, "nvmlMemory_v2", None)
        if version is not None:
            try:
                return nvml.nvmlDeviceGetMemoryInfo(handle, version=version)
            except nvml.NVMLError:  # a driver before 510 has no v2
                pass
        return nvml.nvmlDeviceGetMemoryInfo(handle)

    def _ecc(self, handle: Any, kind: int) -> int:
        nvml = self._nvml
        try:
            return int(nvml.nvmlDeviceGetTotalEccErrors(handle, kind, nvml.NVML_VOLATILE_ECC))
        except nvml.NVMLError:  # ECC off or not supported (consumer GPUs)
            return 0

    def _throttle(self, handle: Any) -> tuple[str, ...]:
        """Why the clocks are held down; NVML renamed "throttle reasons" to "clocks event
        reasons" (driver 535) and will drop the old name, so the new one is asked first."""
        nvml = self._nvml
        for name in CLOCK_EVENT_CALLS:
            call = getattr(nvml, name, None)
            if call is None:
                continue
            try:
                mask = int(call(handle))
            except nvml.NVMLError:  # an older driver lacks the new call
                continue
            return tuple(why for why, bit in THROTTLE_REASONS.items() if mask & bit)
        return ()

    def close(self) -> None:
        if self._ready:
            if self._events is not None:
                self._nvml.nvmlEventSetFree(self._events)
            self._nvml.nvmlShutdown()
            self._ready = False


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def gpu_samples(report: GpuReport, limits: GpuLimits) -> list[Sample]:
    """``llmfleet_gpu_*`` series; ``llmfleet_gpus_available`` says whether NVML works."""
    out = [
        Sample(
            "llmfleet_gpus_available",
            "gauge",
            "llmfleet_gpus_available",
            (),
            1.0 if report.available else 0.0,
        )
    ]
    for gpu in report.gpus:
        labels = (("gpu", str(gpu.index)), ("uuid", gpu.uuid), ("name", gpu.name))
        values = {
            "llmfleet_gpu_temperature_celsius": gpu.temperature_c,
            "llmfleet_gpu_power_watts": gpu.power_w,
            "llmfleet_gpu_memory_used_bytes": float(gpu.memory_used_bytes),
            "llmfleet_gpu_memory_total_bytes": float(gpu.memory_total_bytes),
            "llmfleet_gpu_utilization_ratio": gpu.utilization_ratio,
            "llmfleet_gpu_healthy": 0.0 if judge_gpu(gpu, limits) else 1.0,
        }
        out += [Sample(name, "gauge", name, labels, value) for name, value in values.items()]
        counters = {
            "llmfleet_gpu_ecc_errors_uncorrected_total": gpu.ecc_uncorrected,
            "llmfleet_gpu_ecc_errors_corrected_total": gpu.ecc_corrected,
            "llmfleet_gpu_xid_errors_total": gpu.xid_errors,
        }
        out += [Sample(n, "counter", n, labels, float(v)) for n, v in counters.items()]
        out += [
            Sample(
                "llmfleet_gpu_throttled",
                "gauge",
                "llmfleet_gpu_throttled",
                (*labels, ("reason", why)),
                float(why in gpu.throttle_reasons),
            )
            for why in THROTTLE_REASONS
        ]
    return out
