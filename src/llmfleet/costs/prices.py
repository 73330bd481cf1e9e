"""Which price applies to a replica, and what one replica-hour costs; pure.

A ``PriceBook`` is an environment's ``costs:`` section with the catalogue behind
it: a hardware type the spec prices uses the spec's price, one it does not uses
the catalogue's default for that type (unless ``catalogue: false``). Every figure
carries the ``PriceRef`` it came from, so ``costs`` and ``plan`` can say which
price, from where and as of when.

GPU replicas pay their GPUs' share of the instance (cloud) or of the server
(own); a cloud GPU instance's price includes its CPUs and memory. Replicas
without GPUs pay vCPUs and GiB at the ``cpu`` price.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from llmfleet.costs import formulas
from llmfleet.costs.catalogue import Catalogue
from llmfleet.spec.costs import CloudOffer, CostsSpec, CpuPrice, OwnCluster, RunsOn
from llmfleet.spec.resources import Resources

Basis = Literal["cloud", "own", "cpu"]


@dataclass(frozen=True, slots=True)
class PriceRef:
    """Where a price comes from: shown beside every figure computed with it."""

    basis: Basis
    key: str
    """the hardware type (cloud, own) or ``cpu``"""
    provider: str
    sku: str | None
    pricing: str | None
    origin: str
    """``spec`` or ``catalogue:ID``"""
    source: str | None
    as_of: date | None
    currency: str
    rate: float
    """units of the book's currency per unit of ``currency`` (1.0 when the same)"""

    @property
    def offer(self) -> str:
        """``AWS p5.48xlarge on-demand``: the provider as people write it, SKU, pricing."""
        words = [self.provider.upper() if len(self.provider) <= 3 else self.provider.title()]
        return " ".join([*words, *(w for w in (self.sku, self.pricing) if w)])

    @property
    def place(self) -> str:
        """Where to change it: ``costs.cloud.nvidia-h100`` or the catalogue entry."""
        if self.origin == "spec":
            return f"costs.{self.basis}" + ("" if self.basis == "cpu" else f".{self.key}")
        return self.origin

    def describe(self) -> str:
        """``AWS p5.48xlarge on-demand, as of 2026-11-09`` (``own server, ...`` for own)."""
        text = "own server" if self.basis == "own" else self.offer
        when = f"as of {self.as_of.isoformat()}" if self.as_of else "undated"
        converted = f", converted from {self.currency} at {self.rate:g}" if self.rate != 1 else ""
        return f"{text}, {when}{converted}"

    def to_json(self) -> dict[str, object]:
        return {
            "basis": self.basis,
            "key": self.key,
            "provider": self.provider,
            "sku": self.sku,
            "pricing": self.pricing,
            "origin": self.origin,
            "source": self.source,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "currency": self.currency,
            "exchange_rate": self.rate,
        }


@dataclass(frozen=True, slots=True)
class ReplicaPrice:
    """What one replica costs per hour on one basis, and how that was worked out."""

    per_hour: float
    unit_price: float
    """per GPU-hour (cloud, own) or per vCPU-hour (cpu), in the book's currency"""
    units: str
    """``1 nvidia-h100`` or ``1 vCPU, 1Gi``"""
    ref: PriceRef
    own_running_per_gpu: float | None = None
    """own only: per GPU-hour without the purchase (for the payback)"""
    purchase_per_gpu: float | None = None
    gib_price: float | None = None
    """cpu only: per GiB-hour, in the book's currency"""


@dataclass(frozen=True, slots=True)
class MissingPrice:
    """No price for what a replica runs on: what is missing and how to add it."""

    what: str
    hint: str


@dataclass(frozen=True)
class PriceBook:
    """An environment's prices with the catalogue behind them."""

    spec: CostsSpec
    catalogue: Catalogue

    @property
    def currency(self) -> str:
        return self.spec.currency

    @property
    def hours_per_month(self) -> float:
        return self.spec.hours_per_month

    def cloud(self, hardware: str) -> tuple[CloudOffer, PriceRef] | MissingPrice:
        offer = self.spec.cloud.get(hardware)
        if offer is not None:
            return offer, self._ref("cloud", hardware, offer, origin="spec")
        entry = self.catalogue.default_offer(hardware) if self.spec.catalogue else None
        if entry is None:
            return MissingPrice(hardware, _cloud_hint(hardware))
        ref = self._ref("cloud", hardware, entry, origin=f"catalogue:{entry.id}")
        return _convertible(ref, self.spec) or (entry, ref)

    def own(self, hardware: str) -> tuple[OwnCluster, PriceRef] | MissingPrice:
        own = self.spec.own.get(hardware)
        if own is None:
            return MissingPrice(hardware, f"add costs.own.{hardware} (server_price, ...)")
        ref = PriceRef(
            "own", hardware, "own", None, None, "spec", own.source, own.as_of,
            own.currency or self.currency, self.spec.rate(own.currency),
        )  # fmt: skip
        return own, ref

    def cpu(self) -> tuple[CpuPrice, PriceRef] | MissingPrice:
        if self.spec.cpu is not None:
            return self.spec.cpu, self._ref("cpu", "cpu", self.spec.cpu, origin="spec")
        entry = self.catalogue.default_cpu if self.spec.catalogue else None
        if entry is None:
            return MissingPrice("cpu", _CPU_HINT)
        ref = self._ref("cpu", "cpu", entry, origin=f"catalogue:{entry.id}")
        return _convertible(ref, self.spec) or (entry, ref)

    def _ref(
        self, basis: Basis, key: str, price: CloudOffer | CpuPrice, *, origin: str
    ) -> PriceRef:
        currency = price.currency or self.currency
        rate = self.spec.exchange_rates.get(currency, 0.0) if currency != self.currency else 1.0
        return PriceRef(
            basis, key, price.provider, price.sku, str(price.pricing), origin, price.source,
            price.as_of, currency, rate,
        )  # fmt: skip


_CPU_HINT = (
    "add costs.cpu with price_per_vcpu_hour and price_per_gib_hour "
    "(examples/quickstart.yaml has one)"
)


def _cloud_hint(hardware: str) -> str:
    return (
        f"add costs.cloud.{hardware} with provider, sku, gpus_per_instance and price_per_hour "
        "(`llmfleet costs --catalogue` lists public prices)"
    )


def _convertible(ref: PriceRef, spec: CostsSpec) -> MissingPrice | None:
    """A catalogue price in another currency is used only at a declared exchange rate."""
    if ref.rate > 0:
        return None
    return MissingPrice(
        ref.key,
        f"{ref.origin} is in {ref.currency} and costs are shown in {spec.currency}: add "
        f"costs.exchange_rates.{ref.currency}, or price {ref.key} in costs:",
    )


def price_replica(
    resources: Resources, book: PriceBook, *, basis: RunsOn | None = None
) -> ReplicaPrice | MissingPrice:
    """One replica-hour of ``resources`` on ``basis`` (default: the book's ``runs_on``)."""
    if resources.gpus == 0:
        return _cpu_replica(resources, book)
    if resources.gpu_type is None:
        return MissingPrice(
            "a GPU of unnamed type",
            "set resources.gpu_type (e.g. nvidia-h100) so its price can be found",
        )
    if (basis or book.spec.runs_on) is RunsOn.OWN:
        return _own_replica(resources, resources.gpu_type, book)
    return _cloud_replica(resources, resources.gpu_type, book)


def _cloud_replica(
    resources: Resources, hardware: str, book: PriceBook
) -> ReplicaPrice | MissingPrice:
    found = book.cloud(hardware)
    if isinstance(found, MissingPrice):
        return found
    offer, ref = found
    per_gpu = formulas.gpu_share(offer.price_per_hour, offer.gpus_per_instance) * ref.rate
    return ReplicaPrice(per_gpu * resources.gpus, per_gpu, f"{resources.gpus} {hardware}", ref)


def _own_replica(
    resources: Resources, hardware: str, book: PriceBook
) -> ReplicaPrice | MissingPrice:
    found = book.own(hardware)
    if isinstance(found, MissingPrice):
        return found
    own, ref = found
    hourly = formulas.own_hourly(own)
    return ReplicaPrice(
        hourly.per_gpu * ref.rate * resources.gpus,
        hourly.per_gpu * ref.rate,
        f"{resources.gpus} {hardware}",
        ref,
        own_running_per_gpu=hourly.running_per_gpu * ref.rate,
        purchase_per_gpu=own.server_price / own.gpus_per_server * ref.rate,
    )


def _cpu_replica(resources: Resources, book: PriceBook) -> ReplicaPrice | MissingPrice:
    found = book.cpu()
    if isinstance(found, MissingPrice):
        return found
    price, ref = found
    per_hour = formulas.cpu_hourly(cpus=resources.cpus, memory=resources.memory, price=price)
    units = f"{resources.cpus:g} vCPU, {resources.memory}"
    return ReplicaPrice(
        per_hour * ref.rate,
        price.price_per_vcpu_hour * ref.rate,
        units,
        ref,
        gib_price=price.price_per_gib_hour * ref.rate,
    )


def other_basis(book: PriceBook) -> RunsOn:
    """The basis shown beside what runs, for comparison."""
    return RunsOn.OWN if book.spec.runs_on is RunsOn.CLOUD else RunsOn.CLOUD


def stale_prices(refs: Iterable[PriceRef], *, today: date, max_age_days: int) -> list[str]:
    """A warning per price older than ``max_age_days`` (each price once); pure."""
    warnings = []
    for ref in dict.fromkeys(refs):
        if ref.as_of is None:
            continue
        age = (today - ref.as_of).days
        if age > max_age_days:
            warnings.append(
                f"the price of {ref.key} ({ref.describe()}) is {age} days old; "
                f"check it and update {ref.place}"
                + (
                    " in the spec (a spec price overrides the catalogue)"
                    if ref.origin != "spec"
                    else ""
                )
            )
    return warnings
