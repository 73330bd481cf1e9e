"""CPU, memory and disk of this machine from /proc and the standard library.

``CpuSampler`` keeps the previous /proc/stat reading, so CPU use is the share of
busy time since the last scrape, as node_exporter's rate() would show it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from llmfleet.observe.exposition import Sample


def read_cpu_times(stat: str) -> tuple[float, float]:
    """(busy, total) jiffies from the first line of /proc/stat; pure."""
    fields = [float(x) for x in stat.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def read_meminfo(text: str) -> tuple[float, float]:
    """(used, total) bytes from /proc/meminfo; pure. Used = total - available."""
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        values[name] = float(rest.split()[0]) * 1024 if rest.split() else 0.0
    total = values.get("MemTotal", 0.0)
    return total - values.get("MemAvailable", total), total


class MachineSampler:
    """``llmfleet_machine_*`` series; ``root`` is the /proc to read (tests pass a folder)."""

    def __init__(self, *, proc: Path = Path("/proc"), disk_path: Path = Path("/")) -> None:
        self._proc = proc
        self._disk = disk_path
        self._last: tuple[float, float] | None = None

    def cpu_ratio(self) -> float:
        busy, total = read_cpu_times((self._proc / "stat").read_text())
        last, self._last = self._last, (busy, total)
        if last is None or total <= last[1]:
            return 0.0
        return (busy - last[0]) / (total - last[1])

    def samples(self) -> list[Sample]:
        used, total = read_meminfo((self._proc / "meminfo").read_text())
        disk = shutil.disk_usage(self._disk)
        values = {
            "llmfleet_machine_cpu_usage_ratio": self.cpu_ratio(),
            "llmfleet_machine_cpus": float(os.cpu_count() or 1),
            "llmfleet_machine_load1": os.getloadavg()[0],
            "llmfleet_machine_memory_used_bytes": used,
            "llmfleet_machine_memory_total_bytes": total,
            "llmfleet_machine_disk_used_bytes": float(disk.used),
            "llmfleet_machine_disk_total_bytes": float(disk.total),
        }
        return [Sample(name, "gauge", name, (), value) for name, value in values.items()]
