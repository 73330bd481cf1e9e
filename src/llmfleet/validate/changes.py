"""What the candidate changes in a service: its spec against the one production runs; pure.

A verdict means little without knowing what was tried, so the report opens with
the fields that differ (engine version, args, model first), spelled as the spec
spells them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmfleet.spec.model import ServiceSpec
from llmfleet.spec.spelling import leaf_changes, spelt

FIRST = ("engine", "model")  # what a release usually changes, shown first


@dataclass(frozen=True)
class SpecChange:
    field: str
    production: str
    candidate: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "production": self.production, "candidate": self.candidate}


def service_changes(
    production: ServiceSpec | None, candidate: ServiceSpec
) -> tuple[SpecChange, ...]:
    """Every leaf field that differs, engine and model first; a new service is one line."""
    if production is None:
        return (SpecChange("service", "(not in production)", "new"),)
    found = [
        SpecChange(path, _shown(before), _shown(after))
        for path, before, after in leaf_changes(_dump(production), _dump(candidate))
    ]
    return tuple(sorted(found, key=lambda c: (c.field.split(".")[0] not in FIRST, c.field)))


def _dump(service: ServiceSpec) -> dict[str, Any]:
    return service.model_dump(mode="json")


def _shown(value: Any) -> str:
    """As fleet.yaml spells it; a field the spec leaves out is ``(unset)``."""
    return "(unset)" if value is None else spelt(value)
