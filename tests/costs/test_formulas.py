"""The cost formulas against worked examples written out by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmfleet.costs import formulas
from llmfleet.spec.costs import CpuPrice, OwnCluster

H100_SERVER = OwnCluster(
    server_price=300_000,
    gpus_per_server=8,
    amortisation_years=4,
    residual_value=0.30,
    power_kw=10.2,
    pue=1.3,
    price_per_kwh=0.10,
    colocation_per_kw_month=180,
    maintenance_per_year=30_000,
)


def test_per_gpu_share_of_a_multi_gpu_instance() -> None:
    """AWS p5.48xlarge carries 8 H100 for $55.04 an hour: 55.04 / 8 = $6.88 per GPU-hour,
    and a replica with 2 of its GPUs pays 2 x 6.88 = $13.76 an hour."""
    assert formulas.gpu_share(55.04, 8) == pytest.approx(6.88)
    assert 2 * formulas.gpu_share(55.04, 8) == pytest.approx(13.76)


def test_own_server_amortisation_residual_energy_pue_colocation_maintenance() -> None:
    """An 8x H100 server bought for $300,000, worth 30 % after 4 years:
        amortisation = 300,000 x 0.70 / (4 x 8,760) = 210,000 / 35,040 = 5.99315 per hour
    drawing 10.2 kW in a room of PUE 1.3 at $0.10 per kWh:
        energy = 10.2 x 1.3 x 0.10 = 1.326 per hour
    colocation at $180 per kW-month: 180 x 10.2 x 12 / 8,760 = 2.51507 per hour
    maintenance $30,000 a year: 30,000 / 8,760 = 3.42466 per hour
    per server 13.25888 per hour, per GPU 13.25888 / 8 = 1.65736 per GPU-hour;
    without the purchase (energy, colocation, maintenance) 7.26573 / 8 = 0.90822."""
    hourly = formulas.own_hourly(H100_SERVER)
    assert hourly.amortisation == pytest.approx(5.99315, abs=1e-5)
    assert hourly.energy == pytest.approx(1.326)
    assert hourly.colocation == pytest.approx(2.51507, abs=1e-5)
    assert hourly.maintenance == pytest.approx(3.42466, abs=1e-5)
    assert hourly.per_server == pytest.approx(13.25888, abs=1e-5)
    assert hourly.per_gpu == pytest.approx(1.65736, abs=1e-5)
    assert hourly.running_per_gpu == pytest.approx(0.90822, abs=1e-5)


def test_pue_scales_only_the_energy() -> None:
    """The same server in a room of PUE 1.6: energy 10.2 x 1.6 x 0.10 = 1.632 (was 1.326);
    amortisation, colocation and maintenance stay as they were."""
    worse = formulas.own_hourly(H100_SERVER.model_copy(update={"pue": 1.6}))
    base = formulas.own_hourly(H100_SERVER)
    assert worse.energy == pytest.approx(1.632)
    assert worse.per_server - base.per_server == pytest.approx(1.632 - 1.326)


def test_cpu_replica_per_vcpu_and_gib_hour() -> None:
    """1 vCPU and 1Gi at GCP N2 list prices: 0.031611 + 0.004237 = $0.035848 an hour;
    2 vCPUs and 512Mi: 2 x 0.031611 + 0.5 x 0.004237 = $0.0653405."""
    price = CpuPrice(provider="gcp", price_per_vcpu_hour=0.031611, price_per_gib_hour=0.004237)
    assert formulas.cpu_hourly(cpus=1, memory="1Gi", price=price) == pytest.approx(0.035848)
    assert formulas.cpu_hourly(cpus=2, memory="512Mi", price=price) == pytest.approx(0.0653405)


def test_memory_sizes_in_gib() -> None:
    assert formulas.memory_gib("1Gi") == 1.0
    assert formulas.memory_gib("512Mi") == 0.5
    assert formulas.memory_gib("1G") == pytest.approx(1e9 / 2**30)
    with pytest.raises(ValueError, match="not a memory size"):
        formulas.memory_gib("lots")


def test_per_month_and_per_million_tokens() -> None:
    """$6.88 an hour is 6.88 x 730 = $5,022.40 a month. Two CPU replicas at $0.035848 an
    hour serving 100 tokens/s (360,000 an hour): 0.071696 / 360,000 x 1e6 = $0.199156."""
    assert formulas.per_month(6.88, 730) == pytest.approx(5022.4)
    assert formulas.per_million(0.071696, 100.0) == pytest.approx(0.199156, abs=1e-6)


@pytest.mark.parametrize("tokens", [0.0, -1.0, None, math.nan, math.inf, 1e-310])
def test_per_million_never_divides_by_zero_or_answers_infinity(tokens: float | None) -> None:
    """No throughput (or a nonsense one) has no price per token: None, never inf or nan."""
    assert formulas.per_million(1.0, tokens) is None


def test_utilisation_and_idle_share() -> None:
    """200 tokens/s measured at the service's concurrency, 50 served on average:
    utilisation 50 / 200 = 0.25, idle share 0.75; a burst above capacity is not
    negative idle; without a capacity there is no utilisation."""
    assert formulas.utilisation(50, 200) == 0.25
    assert formulas.idle_share(0.25) == 0.75
    assert formulas.idle_share(formulas.utilisation(300, 200)) == 0.0
    assert formulas.utilisation(50, 0) is None
    assert formulas.utilisation(None, 200) is None


def test_break_even_utilisation_and_payback() -> None:
    """Owning at 1.65736 per GPU-hour against renting at 6.88: owning is cheaper above
    1.65736 / 6.88 = 24.09 % of the hours. Bought at 300,000 / 8 = 37,500 a GPU, run
    around the clock: (6.88 - 0.90822) x 730 = 4,359.40 saved a month, paid back in
    37,500 / 4,359.40 = 8.602 months. Renting at $0.80 never pays back a purchase."""
    hourly = formulas.own_hourly(H100_SERVER)
    assert formulas.break_even_utilisation(hourly.per_gpu, 6.88) == pytest.approx(0.2409, abs=1e-4)
    months = formulas.payback_months(
        purchase_per_gpu=37_500,
        cloud_per_gpu_hour=6.88,
        own_running_per_gpu_hour=hourly.running_per_gpu,
        hours_per_month=730,
    )
    assert months == pytest.approx(8.602, abs=1e-3)
    never = formulas.payback_months(
        purchase_per_gpu=37_500,
        cloud_per_gpu_hour=0.80,
        own_running_per_gpu_hour=hourly.running_per_gpu,
        hours_per_month=730,
    )
    assert never is None


@given(
    per_hour=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    tokens=st.floats(allow_nan=True, allow_infinity=True) | st.none(),
)
def test_per_million_is_finite_or_none(per_hour: float, tokens: float | None) -> None:
    """Whatever the throughput, a price per million tokens is a finite number or None."""
    value = formulas.per_million(per_hour, tokens)
    assert value is None or math.isfinite(value)
