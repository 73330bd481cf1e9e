"""What the candidate changes: its service spec against production's, spelled as in YAML."""

from __future__ import annotations

from llmfleet.spec.model import ServiceSpec
from llmfleet.validate.changes import SpecChange, service_changes


def service(**fields: object) -> ServiceSpec:
    body: dict[str, object] = {"model": "sim:tiny", "engine": {"kind": "sim", "version": "1.1.0"}}
    body.update(fields)
    return ServiceSpec.model_validate(body)


def test_engine_version_args_and_model_come_first_as_written() -> None:
    production = service(replicas=2)
    candidate = service(
        model="sim:small",
        engine={"kind": "sim", "version": "1.2.0", "args": ["--ctx", "4096"]},
        replicas=3,
    )
    assert service_changes(production, candidate) == (
        SpecChange("engine.args", "[]", '[--ctx, "4096"]'),
        SpecChange("engine.version", "1.1.0", "1.2.0"),
        SpecChange("model.source", "sim:tiny", "sim:small"),
        SpecChange("replicas", "2", "3"),
    )


def test_same_spec_no_changes_and_a_new_service_is_one_line() -> None:
    assert service_changes(service(), service()) == ()
    assert service_changes(None, service()) == (
        SpecChange("service", "(not in production)", "new"),
    )
