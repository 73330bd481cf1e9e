"""llmfleet's catalogue of public prices: ``catalogue.yaml`` beside this module.

The prices are data (each with its source and as-of date), not code: updating
one is editing the YAML. ``parse_catalogue`` is pure; ``load_catalogue`` reads
the packaged file, once per process (it never changes while one runs).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from llmfleet.errors import FleetError
from llmfleet.spec.costs import CloudOffer, CpuPrice

CATALOGUE_FILE = "catalogue.yaml"


class CatalogueOffer(CloudOffer):
    """A cloud offer of the catalogue: it names its hardware type and has an id."""

    id: str = Field(min_length=1)
    hardware: str = Field(min_length=1)


class CatalogueCpu(CpuPrice):
    id: str = Field(min_length=1)


@dataclass(frozen=True)
class Catalogue:
    """Offers in file order; the first of a hardware type is its default."""

    currency: str
    cloud: tuple[CatalogueOffer, ...]
    cpu: tuple[CatalogueCpu, ...]

    def default_offer(self, hardware: str) -> CatalogueOffer | None:
        return next((o for o in self.cloud if o.hardware == hardware), None)

    @property
    def default_cpu(self) -> CatalogueCpu | None:
        return self.cpu[0] if self.cpu else None


EMPTY = Catalogue(currency="USD", cloud=(), cpu=())


def parse_catalogue(data: Mapping[str, Any]) -> Catalogue:
    """The catalogue from its YAML data; every entry in the catalogue's currency. Pure."""
    currency = str(data.get("currency", "USD"))
    try:
        cloud = tuple(
            CatalogueOffer.model_validate({"currency": currency, **entry})
            for entry in data.get("cloud") or ()
        )
        cpu = tuple(
            CatalogueCpu.model_validate({"currency": currency, **entry})
            for entry in data.get("cpu") or ()
        )
    except PydanticValidationError as exc:  # a packaging mistake, not the user's
        raise FleetError(f"llmfleet's price catalogue is broken: {exc}") from exc
    return Catalogue(currency=currency, cloud=cloud, cpu=cpu)


@functools.cache
def load_catalogue() -> Catalogue:
    """The packaged catalogue (read once per process)."""
    text = resources.files("llmfleet.costs").joinpath(CATALOGUE_FILE).read_text()
    return parse_catalogue(yaml.safe_load(text))
