"""The ``costs:`` section of the spec: prices, as declared; pure spec models.

Three kinds of price, each keyed by what it prices:

- ``cloud``: per hardware type (a service's ``resources.gpu_type``), the instance that
  carries it: provider, SKU, GPUs per instance and the instance's price per hour;
- ``own``: per hardware type, a server you buy: purchase price, amortisation years and
  residual value, power draw, PUE, energy and colocation prices, maintenance;
- ``cpu``: services without GPUs, per vCPU-hour and GiB-hour.

Every price may say where it comes from (``source``) and as of when (``as_of``);
``plan`` warns about prices older than ``stale_after_days``. A price in another
currency than ``currency`` needs an exchange rate in ``exchange_rates``: currencies
are never added up silently. Hardware types the spec does not price fall back on
llmfleet's catalogue of public prices (``llmfleet.costs``), unless ``catalogue: false``.

``environments.NAME.costs`` is merged over this section with the spec's usual rules
(mappings key by key, plain values replace), so staging can be priced as spot.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

CURRENCY_PATTERN = r"^[A-Z]{3}$"


class _Frozen(BaseModel):
    # The same rules as spec.model.Frozen, repeated: spec.model imports this module.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PricingKind(StrEnum):
    ON_DEMAND = "on-demand"
    RESERVED = "reserved"
    SPOT = "spot"


class RunsOn(StrEnum):
    CLOUD = "cloud"
    OWN = "own"


class _Priced(_Frozen):
    """What every price says besides its numbers."""

    currency: str | None = Field(
        default=None,
        pattern=CURRENCY_PATTERN,
        description="ISO 4217 code of this price; default: costs.currency",
    )
    source: str | None = Field(
        default=None, max_length=500, description="where the price comes from (a URL, a quote)"
    )
    as_of: date | None = Field(
        default=None, description="the date the price was read; plan warns when it is old"
    )


class CloudOffer(_Priced):
    """An instance type that carries GPUs of one hardware type, rented by the hour."""

    provider: str = Field(min_length=1, max_length=100, description="e.g. aws, lambda")
    sku: str = Field(min_length=1, max_length=100, description="instance type, e.g. p5.48xlarge")
    gpus_per_instance: int = Field(default=1, ge=1, le=64, description="GPUs in one instance")
    price_per_hour: float = Field(
        gt=0, le=1e6, description="price of one whole instance per hour; a replica pays its "
        "GPUs' share of it"
    )  # fmt: skip
    pricing: PricingKind = Field(
        default=PricingKind.ON_DEMAND, description="on-demand, reserved or spot"
    )


class OwnCluster(_Priced):
    """A server you buy and run: what one of its GPUs costs per hour, every hour."""

    server_price: float = Field(gt=0, le=1e9, description="purchase price of one server")
    gpus_per_server: int = Field(default=8, ge=1, le=64)
    amortisation_years: float = Field(
        default=4.0, gt=0, le=30, description="years over which the purchase is written off"
    )
    residual_value: float = Field(
        default=0.0, ge=0, lt=1, description="share of the purchase price the server is still "
        "worth after amortisation_years (e.g. 0.3)"
    )  # fmt: skip
    power_kw: float = Field(
        default=0.0, ge=0, le=1000, description="average electrical draw of one server in kW"
    )
    pue: float = Field(
        default=1.0, ge=1, le=5, description="power usage effectiveness of the room (1.1-1.6)"
    )
    price_per_kwh: float = Field(default=0.0, ge=0, le=100, description="energy price per kWh")
    colocation_per_kw_month: float = Field(
        default=0.0, ge=0, le=1e5, description="colocation price per kW of power_kw and month"
    )
    maintenance_per_year: float = Field(
        default=0.0, ge=0, le=1e9, description="support and spares per server and year"
    )


class CpuPrice(_Priced):
    """Services without GPUs: what a vCPU and a GiB of memory cost per hour."""

    provider: str = Field(min_length=1, max_length=100)
    sku: str | None = Field(default=None, max_length=100, description="machine family, if any")
    price_per_vcpu_hour: float = Field(ge=0, le=1e4)
    price_per_gib_hour: float = Field(default=0.0, ge=0, le=1e4)
    pricing: PricingKind = PricingKind.ON_DEMAND


class CostsSpec(_Frozen):
    """The ``costs:`` section: prices of what the fleet runs on, and how to report them."""

    currency: str = Field(
        default="USD", pattern=CURRENCY_PATTERN, description="the currency costs are shown in"
    )
    exchange_rates: dict[str, float] = Field(
        default_factory=dict,
        description="units of `currency` per unit of another currency, for prices declared in "
        "it (e.g. EUR: 1.08); a price in a currency without a rate is an error",
    )
    runs_on: RunsOn = Field(
        default=RunsOn.CLOUD,
        description="which price is what runs: cloud (rented) or own (bought); the other one "
        "is shown beside it with the break-even utilisation",
    )
    hours_per_month: float = Field(default=730.0, gt=0, le=744, description="for $/month")
    stale_after_days: int = Field(
        default=90, ge=1, description="plan warns about prices whose as_of is older"
    )
    catalogue: bool = Field(
        default=True,
        description="price hardware types the spec does not price from llmfleet's catalogue "
        "of public prices (`llmfleet costs --catalogue` lists it)",
    )
    cloud: dict[str, CloudOffer] = Field(
        default_factory=dict, description="per hardware type (resources.gpu_type): a cloud offer"
    )
    own: dict[str, OwnCluster] = Field(
        default_factory=dict, description="per hardware type: an own server, for comparison"
    )
    cpu: CpuPrice | None = Field(
        default=None, description="services without GPUs: price per vCPU-hour and GiB-hour"
    )

    @model_validator(mode="after")
    def _currencies_convert(self) -> CostsSpec:
        """Refuse a price in a currency that cannot be converted into ``currency``."""
        rates = {**self.exchange_rates, self.currency: 1.0}
        for where, price in self.prices():
            if price.currency is not None and price.currency not in rates:
                raise ValueError(
                    f"{where} is in {price.currency} but costs are shown in {self.currency}; "
                    f"add costs.exchange_rates.{price.currency} ({self.currency} per "
                    f"{price.currency}), or declare the price in {self.currency}"
                )
        for code, rate in self.exchange_rates.items():
            if rate <= 0:
                raise ValueError(f"exchange_rates.{code} must be > 0, got {rate}")
        return self

    def prices(self) -> list[tuple[str, _Priced]]:
        """Every declared price with its place in the section (``cloud.nvidia-h100``)."""
        found: list[tuple[str, _Priced]] = [(f"cloud.{k}", v) for k, v in self.cloud.items()]
        found += [(f"own.{k}", v) for k, v in self.own.items()]
        if self.cpu is not None:
            found.append(("cpu", self.cpu))
        return found

    def rate(self, currency: str | None) -> float:
        """Units of ``self.currency`` per unit of ``currency`` (None: the same)."""
        if currency is None or currency == self.currency:
            return 1.0
        return self.exchange_rates[currency]
