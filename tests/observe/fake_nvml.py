# ruff: noqa: N802, N815 - FakeNvml copies pynvml's camelCase API names
"""An honest fake of the slice of NVML (pynvml's module API) that ``NvmlReader`` calls."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any


class FakeNvmlError(Exception):
    pass


@dataclass
class FakeGpu:
    temperature: int = 60
    ecc_uncorrected: int = 0
    throttle: int = 0


class FakeNvml:
    """The slice of pynvml's API that NvmlReader calls, over in-memory GPUs."""

    NVMLError = FakeNvmlError
    NVML_TEMPERATURE_GPU = 0
    NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    NVML_VOLATILE_ECC = 0
    nvmlEventTypeXidCriticalError = 8
    nvmlMemory_v2 = 0x02000028

    def __init__(self, gpus: list[FakeGpu]) -> None:
        self.gpus = gpus
        self.xids: list[tuple[int, int]] = []
        self.initialised = False
        self.old_driver = False
        self.events_supported = True
        self.freed: list[str] = []

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetIndex(self, handle: int) -> int:
        return handle

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H200"

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return f"GPU-{handle:04d}".encode()

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return self.gpus[handle].temperature

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 350_000

    def nvmlDeviceGetMemoryInfo(self, handle: int, version: int | None = None) -> Any:
        if version is None:  # v1 counts the driver's reservation as used
            return SimpleNamespace(used=41 * 2**30, total=141 * 2**30, free=100 * 2**30)
        if self.old_driver:
            raise FakeNvmlError("Function Not Found")
        return SimpleNamespace(version=version, used=40 * 2**30, reserved=2**30,
                               total=141 * 2**30, free=100 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetTotalEccErrors(self, handle: int, kind: int, counter: int) -> int:
        return self.gpus[handle].ecc_uncorrected if kind == 1 else 0

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        if self.old_driver:  # before driver 535 the call does not exist
            raise FakeNvmlError("Function Not Found")
        return self.gpus[handle].throttle

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: int) -> int:
        return self.gpus[handle].throttle

    def nvmlEventSetCreate(self) -> str:
        return "events"

    def nvmlEventSetFree(self, events: str) -> None:
        self.freed.append(events)

    def nvmlDeviceRegisterEvents(self, handle: int, kinds: int, events: str) -> None:
        if not self.events_supported:
            raise FakeNvmlError("Not Supported")

    def nvmlEventSetWait_v2(self, events: str, timeout_ms: int) -> Any:
        if not self.xids:
            raise FakeNvmlError("Timeout")
        device, xid = self.xids.pop(0)
        return SimpleNamespace(device=device, eventData=xid)
