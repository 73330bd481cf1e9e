"""Every PodMonitor and InferencePool llmfleet renders is valid for its CRD's published
schema (vendored in ``crds/``, see its NOTICE.md), in strict mode: a field the schema
does not name is an error, as server-side apply's strict field validation makes it.
The CRDs' CEL rules (``x-kubernetes-validations``) are checked here in Python."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.backends.kubernetes.cases import CASE_IDS, CASES, render

CRDS = Path(__file__).resolve().parent / "crds"
SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitors.monitoring.coreos.com.v1.yaml",
    ("inference.networking.k8s.io/v1", "InferencePool"):
        "inferencepools.inference.networking.k8s.io.v1.yaml",
}  # fmt: skip


def strict(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others (unless
    it keeps unknown fields, as ``x-kubernetes-preserve-unknown-fields`` says)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        open_ended = "additionalProperties" in schema or schema.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        if "properties" in schema and not open_ended:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@cache
def validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    schema = strict(yaml.safe_load((CRDS / SCHEMAS[(api_version, kind)]).read_text()))
    return jsonschema.Draft202012Validator(schema)


def cel_problems(obj: dict[str, Any]) -> list[str]:
    """The InferencePool CRD's two CEL rules, as written in its schema."""
    if obj["kind"] != "InferencePool":
        return []
    spec, problems = obj["spec"], []
    picker = spec["endpointPickerRef"]
    if picker.get("kind", "Service") == "Service" and "port" not in picker:
        problems.append("port is required when kind is 'Service' or unspecified")
    numbers = [port["number"] for port in spec["targetPorts"]]
    if len(numbers) != len(set(numbers)):
        problems.append("port number must be unique")
    return problems


def problems_of(obj: dict[str, Any]) -> list[str]:
    found = validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found] + (
        cel_problems(obj)
    )


@pytest.mark.parametrize(("spec", "env"), CASES, ids=CASE_IDS)
def test_every_crd_object_rendered_is_valid_for_its_published_schema(spec: str, env: str) -> None:
    custom = [o for o in render(spec, env) if (o["apiVersion"], o["kind"]) in SCHEMAS]
    kinds = {o["kind"] for o in custom}
    assert kinds == {"PodMonitor", "InferencePool"}, "both optional kinds are rendered"
    for obj in custom:
        assert problems_of(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_schemas_refuse_what_a_cluster_would() -> None:
    """The check above would pass anything if the schemas did not bite."""
    objects = render("quickstart", "production")
    pool = next(o for o in objects if o["kind"] == "InferencePool")
    monitor = next(o for o in objects if o["kind"] == "PodMonitor")

    unknown = copy.deepcopy(pool)
    unknown["spec"]["targetPortNumber"] = 8000  # the pre-v1 field name
    assert any("targetPortNumber" in p for p in problems_of(unknown))
    no_port = copy.deepcopy(pool)
    del no_port["spec"]["endpointPickerRef"]["port"]
    assert problems_of(no_port) == ["port is required when kind is 'Service' or unspecified"]
    twice = copy.deepcopy(pool)
    twice["spec"]["targetPorts"] *= 2
    assert problems_of(twice) == ["port number must be unique"]
    no_selector = copy.deepcopy(monitor)
    del no_selector["spec"]["selector"]
    assert any("'selector' is a required property" in p for p in problems_of(no_selector))
    bad_interval = copy.deepcopy(monitor)
    bad_interval["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"
    assert any("podMetricsEndpoints.0.interval" in p for p in problems_of(bad_interval))
