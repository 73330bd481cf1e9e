"""Parse and validate ``fleet.yaml`` into frozen, fully resolved objects.

The flow: ``parsing`` (YAML with locations) -> ``loading`` (top-level checks)
-> ``resolve`` (templates, environments, by the rules in ``merging``).
Everything but reading the file is pure.

The names below are imported on first use: a process that only needs the
models (``llmfleet.spec.model``: the gateway, the agent) starts without the
YAML parser, the loader and the schema generator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmfleet.spec.examples import init_template
    from llmfleet.spec.loading import LoadedSpec, load_spec, load_spec_text
    from llmfleet.spec.locations import Location, Locations
    from llmfleet.spec.merging import deep_merge
    from llmfleet.spec.resolve import resolve_fleet
    from llmfleet.spec.schema import fleet_json_schema

_HOMES = {
    "LoadedSpec": "loading",
    "Location": "locations",
    "Locations": "locations",
    "deep_merge": "merging",
    "fleet_json_schema": "schema",
    "init_template": "examples",
    "load_spec": "loading",
    "load_spec_text": "loading",
    "resolve_fleet": "resolve",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
