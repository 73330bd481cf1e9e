"""Parse and validate ``fleet.yaml`` into frozen, fully resolved objects.

The flow: ``parsing`` (YAML with locations) -> ``loading`` (top-level checks)
-> ``resolve`` (templates, environments, by the rules in ``merging``).
Everything but reading the file is pure.
"""

from __future__ import annotations

from llmfleet.spec.examples import init_template
from llmfleet.spec.loading import LoadedSpec, load_spec, load_spec_text
from llmfleet.spec.locations import Location, Locations
from llmfleet.spec.merging import deep_merge
from llmfleet.spec.resolve import resolve_fleet
from llmfleet.spec.schema import fleet_json_schema

__all__ = [
    "LoadedSpec",
    "Location",
    "Locations",
    "deep_merge",
    "fleet_json_schema",
    "init_template",
    "load_spec",
    "load_spec_text",
    "resolve_fleet",
]
