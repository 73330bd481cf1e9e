"""The Kubernetes ``Backend`` in-process: which optional APIs it renders for (API
discovery against the fake API server), and what a destroy plan lists."""

from __future__ import annotations

from llmfleet.backends.kubernetes.context import INFERENCE_POOL_API, POD_MONITOR_API
from llmfleet.backends.kubernetes.fleet import KubernetesFleet
from llmfleet.plan.model import Op
from tests.backends.kubernetes.cases import context
from tests.backends.kubernetes.fake_api import FakeApiServer


def fleet_for(fake: FakeApiServer) -> KubernetesFleet:
    ctx = context("init", "production")
    return KubernetesFleet(
        fleet=ctx.fleet, environment="production", spec=ctx.environment.backend,
        namespace=ctx.namespace, server=fake.url,
    )  # fmt: skip


def test_optional_objects_are_planned_only_for_apis_the_cluster_serves(
    fake_api: FakeApiServer,
) -> None:
    fake_api.absent.add("PodMonitor")
    fleet = fleet_for(fake_api)
    try:
        assert fleet.served_apis() == frozenset({INFERENCE_POOL_API})
        plan = fleet.plan(context("init", "production").environment, serial=0, spec_hash="h")
    finally:
        fleet.close()
    kinds = {a.address.split("/")[0] for a in plan.actions}
    assert "InferencePool" in kinds and "PodMonitor" not in kinds
    assert POD_MONITOR_API not in fleet.served_apis()


def test_a_destroy_plan_deletes_the_environment_s_objects_only(fake_api: FakeApiServer) -> None:
    fleet = fleet_for(fake_api)
    try:
        desired = context("init", "production").environment
        result = fleet.object_plan(desired)
        from llmfleet.backends.kubernetes.applying import apply_objects

        apply_objects(fleet.client, result)
        other = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "not-ours", "namespace": fleet.namespace}}  # fmt: skip
        fake_api.put(other, manager="kubectl")
        plan = fleet.plan_destroy("production", serial=1)
    finally:
        fleet.close()
    assert {a.op for a in plan.actions} == {Op.DELETE}
    assert len(plan.actions) == len(result.changes)
    assert "ConfigMap/not-ours" not in {a.address for a in plan.actions}
    assert plan.actions[-1].address == "ServiceAccount/llmfleet-gateway", "reverse apply order"
