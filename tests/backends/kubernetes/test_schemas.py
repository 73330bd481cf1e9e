"""Every rendered object is valid for Kubernetes' own OpenAPI schemas, in strict mode
(an unknown field is an error), for the oldest and newest versions llmfleet supports."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.backends.kubernetes.cases import CASE_IDS, CASES, render

OLDEST, NEWEST = "1.29.0", kubernetes_validate.latest_version()
CORE_GROUPS = ("v1", "apps/", "policy/", "rbac.authorization.k8s.io/", "networking.k8s.io/")


def _core(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o for o in objects if o["apiVersion"] == "v1" or o["apiVersion"].startswith(CORE_GROUPS)
    ]


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize(("spec", "env"), CASES, ids=CASE_IDS)
def test_every_object_is_valid_in_strict_mode(spec: str, env: str, version: str) -> None:
    objects = render(spec, env)
    core = _core(objects)
    assert len(core) == len(objects) - sum(
        o["kind"] in ("PodMonitor", "InferencePool") for o in objects
    ), "an object of an API the validator does not know was rendered"
    for manifest in core:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_strict_mode_refuses_an_unknown_field() -> None:
    """The check above would pass anything if strict mode did not bite."""
    deployment = next(o for o in render("quickstart", "production") if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, NEWEST, strict=True)
