"""The generated JSON Schema describes every level, and the shipped examples pass it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from llmfleet.spec import fleet_json_schema, init_template, load_spec, load_spec_text
from llmfleet.spec.model import EngineKind

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.yaml"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = fleet_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


def test_schema_has_dialect_title_and_partial_services() -> None:
    schema = fleet_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "llmfleet fleet.yaml"
    partial = schema["$defs"]["PartialService"]
    assert "required" not in partial
    assert {"extends", "model", "engine", "replicas", "resources"} <= set(partial["properties"])
    assert "extends" not in schema["$defs"]["ServiceOverride"]["properties"]


@pytest.mark.parametrize("text", [QUICKSTART.read_text(), init_template()], ids=["quick", "init"])
def test_examples_validate_against_the_schema(
    validator: jsonschema.Draft202012Validator, text: str
) -> None:
    assert _errors(validator, yaml.safe_load(text)) == []


@pytest.mark.parametrize(
    "document",
    [
        {"services": {"chat": {"replcas": 2}}},
        {"templates": {"t": {"engine": {"kind": "llamcpp"}}}, "services": {}},
        {"services": {}, "environments": {"staging": {"services": {"chat": {"slots": 0}}}}},
        {"services": {}, "environments": {"staging": {"defaults": {"extends": "t"}}}},
        {"services": {"Chat": {}}},
    ],
)
def test_schema_rejects_mistakes_at_every_level(
    validator: jsonschema.Draft202012Validator, document: dict[str, Any]
) -> None:
    assert _errors(validator, document) != []


def test_schema_accepts_partial_services_nulls_and_the_model_shorthand(
    validator: jsonschema.Draft202012Validator,
) -> None:
    document = {
        "x-anchor": {"anything": 1},
        "templates": {"t": {"engine": {"kind": "sim"}, "model": {"source": "sim:a"}}},
        "services": {"chat": {"extends": "t", "model": "sim:b", "labels": None}},
        "environments": {
            "production": None,
            "staging": {"defaults": {"resources": {"cpus": None}}, "services": {"chat": None}},
        },
    }
    assert _errors(validator, document) == []


def test_quickstart_loads_as_documented() -> None:
    resolved = load_spec(QUICKSTART).resolved
    production, staging = resolved.environment("production"), resolved.environment("staging")
    chat = production.services["chat"]
    assert chat.engine.kind is EngineKind.LLAMACPP
    assert chat.engine.version == "11434.0.0"
    assert chat.model.source.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (chat.replicas, chat.slots, chat.context) == (2, 4, 4096)
    assert (chat.resources.cpus, chat.resources.memory) == (1, "1Gi")
    assert (production.gateway.port, staging.gateway.port) == (8080, 8081)
    assert staging.services["chat"].replicas == 1
    assert resolved.state == "sqlite:///.llmfleet/state.db"


def test_init_template_loads_with_template_chains_and_a_sim_service() -> None:
    loaded = load_spec_text(init_template(), filename="fleet.yaml")
    assert any("extends" in t for t in loaded.spec.templates.values())
    services = loaded.resolved.environment("staging").services
    assert services["echo"].engine.kind is EngineKind.SIM
    assert services["chat"].labels["runtime"] == "cpu"


def test_locations_index_every_key() -> None:
    loaded = load_spec(QUICKSTART)
    where = loaded.locations.get(("services", "chat", "replicas"))
    assert where is not None
    line = QUICKSTART.read_text().splitlines()[where.line - 1]
    assert line[where.column - 1 :].startswith("replicas:")
