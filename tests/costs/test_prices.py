"""Which price applies to a replica: the spec's, else the catalogue's; missing prices say
how to add one; currencies are converted only at a declared rate; old prices are warned."""

from __future__ import annotations

from datetime import date

import pytest

from llmfleet.costs.catalogue import Catalogue, parse_catalogue
from llmfleet.costs.prices import MissingPrice, ReplicaPrice, price_replica, stale_prices
from llmfleet.errors import SpecError
from llmfleet.spec.costs import RunsOn
from llmfleet.spec.loading import load_spec_text
from tests.costs.helpers import CPU, H100_CLOUD, H100_OWN, TODAY, book, gpu_service, service


def priced(found: ReplicaPrice | MissingPrice) -> ReplicaPrice:
    assert isinstance(found, ReplicaPrice), found
    return found


def test_the_catalogue_prices_a_hardware_type_the_spec_does_not() -> None:
    """No costs: in the spec: an H100 replica is priced at the catalogue's default for
    nvidia-h100 (AWS p5, $55.04 / 8 = $6.88 per GPU-hour), and says so."""
    price = priced(price_replica(gpu_service(2).resources, book()))
    assert price.per_hour == pytest.approx(13.76)
    assert price.ref.origin == "catalogue:aws-p5-h100-on-demand"
    assert price.ref.as_of == date(2026, 11, 9)


def test_a_spec_price_overrides_the_catalogue() -> None:
    """Lambda's 8x H100 at $31.92 an hour in the spec: $3.99 per GPU-hour, from the spec."""
    offer = {
        "provider": "lambda",
        "sku": "8x H100",
        "gpus_per_instance": 8,
        "price_per_hour": 31.92,
    }
    price = priced(price_replica(gpu_service().resources, book(cloud={"nvidia-h100": offer})))
    assert price.per_hour == pytest.approx(3.99)
    assert price.ref.origin == "spec" and price.ref.place == "costs.cloud.nvidia-h100"


def test_a_missing_price_says_what_and_how_to_add_it() -> None:
    """An A100 with the catalogue turned off has no price: the answer names the hardware
    type and the key to add; a CPU service without a cpu price likewise."""
    missing = price_replica(
        service(resources={"gpus": 1, "gpu_type": "nvidia-a100"}).resources, book(catalogue=False)
    )
    assert isinstance(missing, MissingPrice)
    assert missing.what == "nvidia-a100" and "costs.cloud.nvidia-a100" in missing.hint
    cpu = price_replica(service().resources, book(catalogue=False))
    assert isinstance(cpu, MissingPrice) and "costs.cpu" in cpu.hint
    unnamed = price_replica(service(resources={"gpus": 1}).resources, book())
    assert isinstance(unnamed, MissingPrice) and "resources.gpu_type" in unnamed.hint


def test_cpu_services_pay_vcpus_and_memory() -> None:
    """2 vCPUs and 4Gi: 2 x 0.031611 + 4 x 0.004237 = $0.08017 an hour."""
    price = priced(
        price_replica(service(resources={"cpus": 2, "memory": "4Gi"}).resources, book(cpu=CPU))
    )
    assert price.per_hour == pytest.approx(0.08017)
    assert price.gib_price == pytest.approx(0.004237)


def test_own_basis_uses_the_owned_server() -> None:
    price = priced(
        price_replica(
            gpu_service().resources, book(own={"nvidia-h100": H100_OWN}), basis=RunsOn.OWN
        )
    )
    assert price.per_hour == pytest.approx(1.65736, abs=1e-5)
    assert price.purchase_per_gpu == pytest.approx(37_500)


def test_currencies_are_never_mixed_silently() -> None:
    """A EUR price in a USD spec without a rate is a spec error naming the fix; with a rate
    it is converted. A EUR book cannot use the USD catalogue without a rate for USD."""
    text = """
services:
  chat: {model: "sim:tiny", engine: {kind: sim, version: "1"}}
costs:
  cpu: {provider: hetzner, price_per_vcpu_hour: 0.01, currency: EUR}
"""
    with pytest.raises(SpecError, match=r"add costs.exchange_rates.EUR"):
        load_spec_text(text)
    converted = book(cpu={**CPU, "currency": "EUR"}, exchange_rates={"EUR": 1.1})
    price = priced(price_replica(service().resources, converted))
    assert price.per_hour == pytest.approx(1.1 * 0.035848)
    assert price.ref.rate == 1.1 and "converted from EUR" in price.ref.describe()
    euro = book(currency="EUR")
    missing = price_replica(gpu_service().resources, euro)
    assert isinstance(missing, MissingPrice) and "exchange_rates.USD" in missing.hint
    rated = priced(
        price_replica(gpu_service().resources, book(currency="EUR", exchange_rates={"USD": 0.9}))
    )
    assert rated.per_hour == pytest.approx(6.88 * 0.9)


def test_environments_merge_their_costs_over_the_top_level() -> None:
    """staging prices the same H100 offer as spot at a lower price; production keeps it."""
    text = f"""
services:
  chat: {{model: "sim:tiny", engine: {{kind: sim, version: "1"}}}}
costs:
  cloud:
    nvidia-h100: {H100_CLOUD}
environments:
  production: {{}}
  staging:
    gateway: {{port: 8081}}
    costs:
      cloud: {{nvidia-h100: {{pricing: spot, price_per_hour: 20.0}}}}
"""
    resolved = load_spec_text(text).resolved
    production = resolved.environments["production"].costs.cloud["nvidia-h100"]
    staging = resolved.environments["staging"].costs.cloud["nvidia-h100"]
    assert (production.pricing, production.price_per_hour) == ("on-demand", 55.04)
    assert (staging.pricing, staging.price_per_hour, staging.sku) == ("spot", 20.0, "p5.48xlarge")


def test_a_bad_environment_price_is_reported_where_it_was_written() -> None:
    text = """
services:
  chat: {model: "sim:tiny", engine: {kind: sim, version: "1"}}
environments:
  production:
    costs: {cpu: {provider: x, price_per_vcpu_hour: -1}}
"""
    with pytest.raises(SpecError, match=r"environments.production.costs.cpu.price_per_vcpu_hour"):
        load_spec_text(text)


def test_prices_older_than_the_limit_are_warned_about_once() -> None:
    """On 2026-12-05 with a 90-day limit: the AWS price of 2026-11-09 (26 days) is fresh,
    the Lambda price of 2026-09-01 (95 days) is old; undated prices are not judged."""
    catalogue = parse_catalogue({"cloud": [
        {"id": "lambda", "hardware": "nvidia-h100", "provider": "lambda", "sku": "8x",
         "gpus_per_instance": 8, "price_per_hour": 31.92, "as_of": "2026-09-01"},
    ]})  # fmt: skip
    old = priced(price_replica(gpu_service().resources, book(catalogue)))
    fresh = priced(price_replica(gpu_service().resources, book(cloud={"nvidia-h100": H100_CLOUD})))
    undated = priced(price_replica(service().resources, book(cpu=CPU)))
    warnings = stale_prices(
        [old.ref, old.ref, fresh.ref, undated.ref], today=TODAY, max_age_days=90
    )
    assert len(warnings) == 1
    assert "95 days old" in warnings[0] and "catalogue:lambda" in warnings[0]
    assert stale_prices([old.ref], today=date(2026, 11, 30), max_age_days=90) == []


def test_the_packaged_catalogue_has_sources_and_dates() -> None:
    from llmfleet.costs.catalogue import load_catalogue

    catalogue: Catalogue = load_catalogue()
    assert {o.hardware for o in catalogue.cloud} >= {"nvidia-h100", "nvidia-h200"}
    for entry in (*catalogue.cloud, *catalogue.cpu):
        assert entry.source and entry.as_of, entry
    per_gpu = {o.id: o.price_per_hour / o.gpus_per_instance for o in catalogue.cloud}
    assert per_gpu["aws-p5-h100-on-demand"] == pytest.approx(6.88)
    assert per_gpu["lambda-8x-h100-on-demand"] == pytest.approx(3.99)
    assert per_gpu["coreweave-h200-on-demand"] == pytest.approx(6.31)
