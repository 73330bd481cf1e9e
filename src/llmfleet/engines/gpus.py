"""Whether this machine can see an NVIDIA GPU, and if not, why not.

NVML (``pynvml`` from nvidia-ml-py) is asked first when it is importable, then
``nvidia-smi``. The answer says why no GPU is visible, so an error can tell the
user what was tried.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from dataclasses import dataclass

NVIDIA_SMI_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class GpuVisibility:
    """How many NVIDIA GPUs are visible; ``reason`` explains a count of 0."""

    count: int
    reason: str


def visible_gpus() -> GpuVisibility:
    """Count the NVIDIA GPUs this process can use. Never raises."""
    via_nvml = _count_with_nvml()
    if via_nvml is not None and via_nvml.count > 0:
        return via_nvml
    via_smi = _count_with_nvidia_smi()
    if via_nvml is not None and via_smi.count == 0:
        return GpuVisibility(0, f"{via_nvml.reason}; {via_smi.reason}")
    return via_smi


def _count_with_nvml() -> GpuVisibility | None:
    try:
        pynvml = importlib.import_module("pynvml")
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml raises its own NVMLError tree
        return GpuVisibility(0, f"NVML cannot initialise: {exc}")
    try:
        return GpuVisibility(int(pynvml.nvmlDeviceGetCount()), "counted by NVML")
    finally:
        pynvml.nvmlShutdown()


def _count_with_nvidia_smi() -> GpuVisibility:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return GpuVisibility(0, "nvidia-smi is not installed")
    try:
        done = subprocess.run(
            [smi, "--list-gpus"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GpuVisibility(0, f"nvidia-smi failed: {exc}")
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return GpuVisibility(0, f"nvidia-smi failed: {last}")
    count = sum(1 for line in done.stdout.splitlines() if line.startswith("GPU "))
    return GpuVisibility(count, "listed by nvidia-smi" if count else "nvidia-smi lists no GPU")
