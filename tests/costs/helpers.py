"""Small builders for the cost tests: services, price books and measurements."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from llmfleet.costs.catalogue import Catalogue, load_catalogue
from llmfleet.costs.prices import PriceBook
from llmfleet.spec.costs import CostsSpec
from llmfleet.spec.model import ServiceSpec
from llmfleet.state.records import Measurement

TODAY = date(2026, 12, 5)
CPU = {"provider": "gcp", "price_per_vcpu_hour": 0.031611, "price_per_gib_hour": 0.004237}
H100_CLOUD = {"provider": "aws", "sku": "p5.48xlarge", "gpus_per_instance": 8,
              "price_per_hour": 55.04, "as_of": "2026-11-09"}  # fmt: skip
H100_OWN = {
    "server_price": 300_000, "gpus_per_server": 8, "amortisation_years": 4,
    "residual_value": 0.3, "power_kw": 10.2, "pue": 1.3, "price_per_kwh": 0.10,
    "colocation_per_kw_month": 180, "maintenance_per_year": 30_000,
}  # fmt: skip


def service(**overrides: Any) -> ServiceSpec:
    body: dict[str, Any] = {"model": "sim:tiny", "engine": {"kind": "sim", "version": "1"}}
    return ServiceSpec.model_validate({**body, **overrides})


def gpu_service(gpus: int = 1, **overrides: Any) -> ServiceSpec:
    return service(resources={"gpus": gpus, "gpu_type": "nvidia-h100"}, **overrides)


def book(source: Catalogue | None = None, **costs: Any) -> PriceBook:
    """A price book of ``costs`` (the spec section) over ``source`` (default: the packaged
    catalogue)."""
    return PriceBook(CostsSpec.model_validate(costs), source or load_catalogue())


def measurement(
    ident: int = 1,
    *,
    spec: ServiceSpec | None = None,
    serial: int | None = 7,
    environment: str = "production",
    concurrency: int | None = 4,
    output: float = 100.0,
    inp: float = 50.0,
    replicas: int | None = None,
    at: datetime = datetime(2026, 12, 1, tzinfo=UTC),
    runtime_hash: str | None = None,
) -> Measurement:
    spec = spec or service()
    return Measurement(
        id=ident,
        environment=environment,
        service="chat",
        serial=serial,
        runtime_hash=runtime_hash or spec.runtime_hash(),
        replicas=replicas if replicas is not None else spec.replicas,
        source="bench",
        level=f"c{concurrency}" if concurrency is not None else "r2",
        concurrency=concurrency,
        duration_s=10.0,
        requests=10,
        errors=0,
        input_tokens_per_s=inp,
        output_tokens_per_s=output,
        user="ann",
        created_at=at,
    )
