"""The arithmetic of costs, one formula a function, each with a worked example; pure.

Every amount is in one currency (the caller converts before); every rate is per
hour. No function here divides by a zero or returns an infinity: where a figure
cannot be computed (no throughput, no saving), the answer is ``None`` and the
caller says why.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from llmfleet.spec.costs import CpuPrice, OwnCluster

HOURS_PER_YEAR = 8760.0
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?")
_BYTES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BYTES |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def gpu_share(instance_per_hour: float, gpus_per_instance: int) -> float:
    """One GPU's share of a multi-GPU instance's hourly price.

    AWS p5.48xlarge: 8 H100 for $55.04 an hour -> 55.04 / 8 = $6.88 per GPU-hour.
    """
    return instance_per_hour / gpus_per_instance


@dataclass(frozen=True, slots=True)
class OwnHourly:
    """What one owned server costs per hour, by part; every part is paid every hour."""

    amortisation: float
    energy: float
    colocation: float
    maintenance: float
    gpus: int

    @property
    def per_server(self) -> float:
        return self.amortisation + self.energy + self.colocation + self.maintenance

    @property
    def per_gpu(self) -> float:
        return self.per_server / self.gpus

    @property
    def running_per_gpu(self) -> float:
        """Per GPU-hour without the purchase: what owning costs once the server is paid."""
        return (self.energy + self.colocation + self.maintenance) / self.gpus


def own_hourly(own: OwnCluster) -> OwnHourly:
    """An owned server's cost per hour: amortisation, energy, colocation, maintenance.

    Worked example (an 8x H100 server):
      price $300,000, residual value 30 % after 4 years:
        amortisation = 300,000 x (1 - 0.30) / (4 x 8,760 h) = 210,000 / 35,040 = $5.9932/h
      10.2 kW drawn, PUE 1.3, $0.10 per kWh:
        energy = 10.2 x 1.3 x 0.10 = $1.3260/h
      colocation $180 per kW-month, 12 months a year:
        colocation = 180 x 10.2 x 12 / 8,760 = $2.5151/h
      maintenance $30,000 a year:
        maintenance = 30,000 / 8,760 = $3.4247/h
      per server 13.2590/h; per GPU 13.2590 / 8 = $1.6574 per GPU-hour.
    """
    return OwnHourly(
        amortisation=own.server_price
        * (1 - own.residual_value)
        / (own.amortisation_years * HOURS_PER_YEAR),
        energy=own.power_kw * own.pue * own.price_per_kwh,
        colocation=own.colocation_per_kw_month * own.power_kw * 12 / HOURS_PER_YEAR,
        maintenance=own.maintenance_per_year / HOURS_PER_YEAR,
        gpus=own.gpus_per_server,
    )


def memory_gib(text: str) -> float:
    """A spec memory size in GiB: ``"1Gi"`` -> 1.0, ``"512Mi"`` -> 0.5, ``"1G"`` -> 0.9313."""
    match = _MEMORY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a memory size such as 512Mi or 4Gi: {text!r}")
    return float(match.group(1)) * _BYTES[match.group(2) or ""] / 2**30


def cpu_hourly(*, cpus: float, memory: str, price: CpuPrice) -> float:
    """A CPU-only replica per hour: vCPUs and memory, each at its own price.

    1 vCPU and 1Gi at GCP N2 list prices ($0.031611 per vCPU-hour, $0.004237 per
    GiB-hour): 1 x 0.031611 + 1 x 0.004237 = $0.035848 per replica-hour.
    """
    return cpus * price.price_per_vcpu_hour + memory_gib(memory) * price.price_per_gib_hour


def per_month(per_hour: float, hours_per_month: float) -> float:
    """$6.88 an hour for 730 hours (a year's 8,760 / 12) -> $5,022.40 a month."""
    return per_hour * hours_per_month


def per_million(per_hour: float, tokens_per_s: float | None) -> float | None:
    """Price per million tokens at a throughput: price / tokens per hour x 1e6.

    Two replicas at $0.035848 an hour each (0.071696/h) serving 100 tokens/s
    (360,000 tokens an hour): 0.071696 / 360,000 x 1e6 = $0.1992 per 1M tokens.
    ``None`` when nothing was served (zero, negative or unknown throughput).
    """
    if tokens_per_s is None or not math.isfinite(tokens_per_s) or tokens_per_s <= 0:
        return None
    value = per_hour / (tokens_per_s * 3600) * 1e6
    return value if math.isfinite(value) else None  # a throughput of 1e-300 tokens/s


def utilisation(
    live_tokens_per_s: float | None, capacity_tokens_per_s: float | None
) -> float | None:
    """Share of the measured capacity the live traffic uses.

    Measured 200 tokens/s at the service's concurrency, serving 50 tokens/s on
    average since the replicas started: 50 / 200 = 0.25 (so 0.75 of what is paid
    for is idle). ``None`` without both figures.
    """
    if live_tokens_per_s is None or capacity_tokens_per_s is None or capacity_tokens_per_s <= 0:
        return None
    return max(0.0, live_tokens_per_s) / capacity_tokens_per_s


def idle_share(used: float | None) -> float | None:
    """1 - utilisation, never below 0 (a burst above the measured level is not negative idle)."""
    return None if used is None else max(0.0, 1.0 - used)


def break_even_utilisation(own_per_gpu_hour: float, cloud_per_gpu_hour: float) -> float | None:
    """The share of hours a GPU must be needed for owning it to cost what renting does.

    A rented GPU is paid only while needed (cloud x u); an owned one every hour
    (own). Owning wins above u = own / cloud: $1.6574 against $6.88 -> 0.2409, so
    owning is cheaper for anything busier than about 24 % of the hours. Above 1
    renting always wins. ``None`` without a cloud price.
    """
    if cloud_per_gpu_hour <= 0:
        return None
    return own_per_gpu_hour / cloud_per_gpu_hour


def payback_months(
    *,
    purchase_per_gpu: float,
    cloud_per_gpu_hour: float,
    own_running_per_gpu_hour: float,
    hours_per_month: float,
    used: float = 1.0,
) -> float | None:
    """Months until a bought GPU has saved its purchase price against renting one.

    Each month saves the rent no longer paid (cloud x used x hours) less what
    running the owned GPU costs (energy, colocation, maintenance). An 8x H100
    server at $300,000 is $37,500 a GPU; at $6.88 rented around the clock against
    $0.9082 an hour to run: (6.88 - 0.9082) x 730 = $4,359.41 saved a month,
    37,500 / 4,359.41 = 8.60 months. ``None`` when owning never pays back.
    """
    saving = (cloud_per_gpu_hour * used - own_running_per_gpu_hour) * hours_per_month
    if saving <= 0:
        return None
    return purchase_per_gpu / saving
