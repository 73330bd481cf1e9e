"""The JSON Schema of ``fleet.yaml``, generated from the models; pure.

``FleetSpec`` keeps services, templates and overrides as plain mappings (they
are partial until resolved), so its own schema says nothing about their keys.
Here the ``ServiceSpec`` schema is added in a partial form (nothing required,
any key may be ``null`` to reset it) and referenced from every place a partial
service can be written, so editors autocomplete and check every level:

- ``services.*`` and ``templates.*``: ``PartialService`` (with ``extends``)
- ``environments.*.defaults`` and ``environments.*.services.*``: ``ServiceOverride``
"""

from __future__ import annotations

import copy
from typing import Any

from llmfleet.spec.model import (
    EXTENSION_PREFIX,
    NAME_PATTERN,
    SOURCE_PATTERN,
    FleetSpec,
    ServiceSpec,
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_META_KEYS = ("title", "description", "default")


def fleet_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a ``fleet.yaml`` document."""
    schema = FleetSpec.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    service = ServiceSpec.model_json_schema(ref_template="#/$defs/{model}")
    for name, definition in service.pop("$defs", {}).items():
        defs[name] = _partial(definition)
    defs["ServiceOverride"] = _service_override(service)
    defs["PartialService"] = _partial_service(defs["ServiceOverride"])
    _point_at_partials(schema["properties"], defs["EnvironmentSpec"]["properties"])
    schema["patternProperties"] = {f"^{EXTENSION_PREFIX}": {}}
    return {"$schema": JSON_SCHEMA_DIALECT, **schema, "title": "llmfleet fleet.yaml"}


def _point_at_partials(top: dict[str, Any], environment: dict[str, Any]) -> None:
    service_ref = {"$ref": "#/$defs/PartialService"}
    override_ref = {"$ref": "#/$defs/ServiceOverride"}
    top["templates"]["additionalProperties"] = service_ref
    top["services"]["additionalProperties"] = service_ref
    top["services"]["propertyNames"] = {"pattern": NAME_PATTERN}
    top["environments"]["propertyNames"] = {"pattern": NAME_PATTERN}
    # An empty entry (`staging:` with nothing under it) means no overrides.
    top["environments"]["additionalProperties"] = _or_null(
        top["environments"]["additionalProperties"]
    )
    environment["defaults"] = {**_meta(environment["defaults"]), **override_ref}
    environment["services"]["additionalProperties"] = _or_null(override_ref)


def _service_override(service: dict[str, Any]) -> dict[str, Any]:
    override = _partial(service)
    override["title"] = "ServiceOverride"
    override["description"] = "Part of a service, merged over what it inherits."
    model = override["properties"]["model"]
    shorthand = {"type": "string", "pattern": SOURCE_PATTERN, "description": "the source"}
    model["anyOf"].insert(0, shorthand)  # `model: pypi:...` is short for `model: {source: ...}`
    return override


def _partial_service(override: dict[str, Any]) -> dict[str, Any]:
    partial = copy.deepcopy(override)
    partial["title"] = "PartialService"
    partial["description"] = "A service or template; `extends` names the template it builds on."
    extends = {"type": "string", "description": "the template this one builds on"}
    partial["properties"] = {"extends": extends, **partial["properties"]}
    return partial


def _partial(definition: dict[str, Any]) -> dict[str, Any]:
    """An object schema with nothing required and every property nullable."""
    if "properties" not in definition:
        return definition  # an enum
    partial = {k: v for k, v in definition.items() if k != "required"}
    partial["properties"] = {
        name: _nullable(prop) for name, prop in definition["properties"].items()
    }
    return partial


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    options = prop.get("anyOf")
    if options is None:
        options = [{k: v for k, v in prop.items() if k not in _META_KEYS}]
    if {"type": "null"} not in options:
        options = [*options, {"type": "null"}]
    return {**_meta(prop), "anyOf": options}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _meta(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: prop[k] for k in _META_KEYS if k in prop}
