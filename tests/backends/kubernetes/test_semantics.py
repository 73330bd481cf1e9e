"""What must hold of any render, checked on every example: what the schemas cannot say."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from llmfleet.backends.kubernetes.pods import startup_window_s
from llmfleet.backends.kubernetes.workloads import DRAIN_S
from tests.backends.kubernetes.cases import CASE_IDS, CASES, context, render

DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
pytestmark = pytest.mark.parametrize(("spec", "env"), CASES, ids=CASE_IDS)


def _of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_names_are_dns_labels_and_selectors_within_template_labels(spec: str, env: str) -> None:
    for manifest in render(spec, env):
        name = manifest["metadata"]["name"]
        assert len(name) <= 63 and DNS_1123.fullmatch(name), name
    for deployment in _of(render(spec, env), "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert "llmfleet.io/revision" not in selector and "app.kubernetes.io/version" not in labels


def test_progress_deadline_and_grace_period_cover_startup_and_requests(spec: str, env: str) -> None:
    services = context(spec, env).environment.services
    for deployment in _of(render(spec, env), "Deployment"):
        service = services.get(deployment["metadata"]["name"])
        if service is None:
            continue  # the gateway
        pod = _pod(deployment)
        engine = pod["containers"][0]
        startup = engine["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= service.rollout.startup_s
        assert deployment["spec"]["progressDeadlineSeconds"] > startup_window_s(
            service.rollout.startup_s
        )
        assert engine["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(DRAIN_S)]
        assert pod["terminationGracePeriodSeconds"] > DRAIN_S + service.timeouts.total_s
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert (rolling["maxSurge"], rolling["maxUnavailable"]) == (
            service.rollout.max_surge,
            service.rollout.max_unavailable,
        )


def test_a_disruption_budget_only_with_two_or_more_pods(spec: str, env: str) -> None:
    objects = render(spec, env)
    budgets = {o["metadata"]["name"] for o in _of(objects, "PodDisruptionBudget")}
    for deployment in _of(objects, "Deployment"):
        wanted = deployment["spec"]["replicas"] >= 2
        assert (deployment["metadata"]["name"] in budgets) == wanted, deployment["metadata"]["name"]


def test_only_the_gateway_reaches_engine_ports(spec: str, env: str) -> None:
    objects = render(spec, env)
    (policy,) = _of(objects, "NetworkPolicy")
    selected = policy["spec"]["podSelector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}, "no namespace or IP block may be let in"
    gateway_pods = next(
        o for o in _of(objects, "Deployment") if o["metadata"]["name"] == "llmfleet-gateway"
    )["spec"]["template"]["metadata"]["labels"]
    assert source["podSelector"]["matchLabels"].items() <= gateway_pods.items()
    allowed = {p["port"] for p in rule["ports"]}
    for deployment in _of(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        is_engine = selected.items() <= labels.items()
        assert is_engine == (deployment["metadata"]["name"] != "llmfleet-gateway")
        if is_engine:
            ports = {p["containerPort"] for c in _pod(deployment)["containers"] for p in c["ports"]}
            assert ports <= allowed


def test_no_secret_value_is_written_into_a_manifest(spec: str, env: str) -> None:
    objects = render(spec, env)
    assert not _of(objects, "Secret")
    for deployment in _of(objects, "Deployment"):
        for container in _pod(deployment)["containers"]:
            for variable in container["env"]:
                if variable["name"].endswith(("API_KEY", "STATE_URL")):
                    assert "value" not in variable and "secretKeyRef" in variable["valueFrom"]


def test_the_gateway_pods_roll_when_their_config_changes_and_only_then(spec: str, env: str) -> None:
    """The gateway reads its ConfigMap at start, so an in-place change (routing, timeouts,
    an agent's concurrency) must roll its pods, as Helm's checksum annotation does: it
    went into the ConfigMap and the running gateway never saw it."""
    objects = render(spec, env)
    (config,) = [
        o for o in _of(objects, "ConfigMap") if o["metadata"]["name"] == "llmfleet-gateway"
    ]
    (gateway,) = [
        o for o in _of(objects, "Deployment") if o["metadata"]["name"] == "llmfleet-gateway"
    ]
    annotations = gateway["spec"]["template"]["metadata"].get("annotations") or {}
    body = config["data"]["services.json"]
    assert annotations.get("llmfleet.io/config-sha256") == hashlib.sha256(body.encode()).hexdigest()
    again = [
        o
        for o in _of(render(spec, env), "Deployment")
        if o["metadata"]["name"] == "llmfleet-gateway"
    ]
    assert again[0]["spec"]["template"] == gateway["spec"]["template"], "same spec, no roll"
