"""What the candidate changes in a service: its spec against the one production runs; pure.

A verdict means little without knowing what was tried, so the report opens with
the fields that differ (engine version, args, model first), spelled as the spec
spells them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmfleet.spec.model import ServiceSpec

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
    found = _leaf_changes(_dump(production), _dump(candidate))
    return tuple(sorted(found, key=lambda c: (c.field.split(".")[0] not in FIRST, c.field)))


def _dump(service: ServiceSpec) -> dict[str, Any]:
    return service.model_dump(mode="json")


def _leaf_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
) -> list[SpecChange]:
    changes: list[SpecChange] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        before, after = old.get(key), new.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes += _leaf_changes(before, after, prefix=path + ".")
        elif before != after:
            changes.append(SpecChange(path, spell(before), spell(after)))
    return changes


def spell(value: Any) -> str:
    """A value as it would be written in fleet.yaml (flow style), not as a Python repr."""
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(spell(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {spell(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)
