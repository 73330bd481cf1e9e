"""Plan and apply of rendered objects against the fake API server, over real HTTP:
server-side apply dry runs, diffs, conflicts with other field managers, replaces, prune."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from llmfleet.backends.kubernetes.applying import apply_objects
from llmfleet.backends.kubernetes.client import connect
from llmfleet.backends.kubernetes.context import RenderContext
from llmfleet.backends.kubernetes.planning import Action, ObjectPlan, plan_objects
from llmfleet.errors import ApplyError, BackendError
from tests.backends.kubernetes.cases import context, render
from tests.backends.kubernetes.fake_api import FakeApiServer

SPEC, ENV = "init", "production"


def plan(fake: FakeApiServer, objects: list[dict[str, Any]], **kw: Any) -> ObjectPlan:
    ctx = context(SPEC, ENV)
    with connect(ctx.environment.backend, namespace=ctx.namespace, server=fake.url) as client:
        return plan_objects(client, objects, owner=ctx.owner, namespace=ctx.namespace, **kw)


def apply(fake: FakeApiServer, result: ObjectPlan, **kw: Any) -> list[str]:
    ctx = context(SPEC, ENV)
    with connect(ctx.environment.backend, namespace=ctx.namespace, server=fake.url) as client:
        return apply_objects(client, result, **kw)


def by_ref(result: ObjectPlan) -> dict[str, Any]:
    return {change.ref: change for change in result.changes}


def deployment(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


@pytest.fixture
def ctx() -> RenderContext:
    return context(SPEC, ENV)


def test_a_plan_of_an_empty_namespace_creates_everything_and_changes_nothing(
    fake_api: FakeApiServer,
) -> None:
    objects = render(SPEC, ENV)
    result = plan(fake_api, objects)
    assert [c.action for c in result.changes] == [Action.CREATE] * len(objects)
    assert fake_api.objects == {}
    patches = [path for method, path in fake_api.requests if method == "PATCH"]
    assert len(patches) == len(objects)
    assert all("dryRun=All" in p and "fieldManager=llmfleet" in p for p in patches)


def test_apply_then_plan_again_is_all_no_ops(fake_api: FakeApiServer, ctx: RenderContext) -> None:
    objects = render(SPEC, ENV)
    done = apply(fake_api, plan(fake_api, objects))
    assert done[0] == "+ ServiceAccount/llmfleet-gateway" and len(done) == len(objects)
    assert fake_api.get("Deployment", ctx.namespace, "chat") is not None
    again = plan(fake_api, objects)
    assert again.pending == [], [(c.ref, c.fields) for c in again.pending]


def test_a_changed_field_is_an_update_naming_the_field(fake_api: FakeApiServer) -> None:
    objects = render(SPEC, ENV)
    apply(fake_api, plan(fake_api, objects))
    changed = copy.deepcopy(objects)
    container = deployment(changed, "chat")["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "llmfleet:other"
    change = by_ref(plan(fake_api, changed))["Deployment/chat"]
    assert change.action == Action.UPDATE
    assert change.fields == (f"spec.template.spec.containers[{container['name']}].image",)


def test_replicas_owned_by_an_autoscaler_are_a_conflict_never_overwritten_unforced(
    fake_api: FakeApiServer, ctx: RenderContext
) -> None:
    objects = render(SPEC, ENV)
    apply(fake_api, plan(fake_api, objects))
    scaled = fake_api.get("Deployment", ctx.namespace, "chat")
    assert scaled is not None
    scaled["spec"]["replicas"] = 5
    fake_api.put(scaled, manager="hpa-controller", owns=[("spec", "replicas")])
    wanted = deployment(objects, "chat")["spec"]["replicas"]
    result = plan(fake_api, objects)
    change = by_ref(result)["Deployment/chat"]
    assert change.conflicts == (".spec.replicas owned by hpa-controller",)
    assert change.fields == ("spec.replicas",)
    with pytest.raises(BackendError, match="hpa-controller") as caught:
        apply(fake_api, result)
    assert "--force-conflicts" in (caught.value.hint or "")
    assert fake_api.get("Deployment", ctx.namespace, "chat")["spec"]["replicas"] == 5  # type: ignore[index]
    forced = plan(fake_api, objects, force_conflicts=True)
    apply(fake_api, forced, force_conflicts=True)
    assert fake_api.get("Deployment", ctx.namespace, "chat")["spec"]["replicas"] == wanted  # type: ignore[index]
    assert plan(fake_api, objects).pending == []


def test_objects_no_longer_rendered_are_pruned_others_are_left(
    fake_api: FakeApiServer, ctx: RenderContext
) -> None:
    objects = render(SPEC, ENV)
    apply(fake_api, plan(fake_api, objects))
    meta = {"name": "not-ours", "namespace": ctx.namespace, "labels": {"a": "b"}}
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
    fake_api.put(foreign, manager="kubectl")
    fewer = [
        o for o in objects if o["metadata"].get("labels", {}).get("llmfleet.io/service") != "echo"
    ]
    result = plan(fake_api, fewer)
    deletes = [c.ref for c in result.changes if c.action == Action.DELETE]
    assert sorted(deletes) == ["Deployment/echo", "InferencePool/echo", "Service/echo"]
    apply(fake_api, result)
    assert fake_api.get("Deployment", ctx.namespace, "echo") is None
    assert fake_api.get("ConfigMap", ctx.namespace, "not-ours") is not None
    assert plan(fake_api, fewer).pending == []


def test_an_immutable_selector_change_is_a_replace(
    fake_api: FakeApiServer, ctx: RenderContext
) -> None:
    objects = render(SPEC, ENV)
    apply(fake_api, plan(fake_api, objects))
    changed = copy.deepcopy(objects)
    chat = deployment(changed, "chat")
    chat["spec"]["selector"]["matchLabels"]["extra"] = "x"
    chat["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    result = plan(fake_api, changed)
    change = by_ref(result)["Deployment/chat"]
    assert (change.action, change.fields) == (Action.REPLACE, ("spec.selector",))
    assert "-/+ Deployment/chat" in apply(fake_api, result)
    live = fake_api.get("Deployment", ctx.namespace, "chat")
    assert live is not None and live["spec"]["selector"]["matchLabels"]["extra"] == "x"


def test_a_refusal_part_way_says_what_was_done(fake_api: FakeApiServer, ctx: RenderContext) -> None:
    objects = render(SPEC, ENV)
    result = plan(fake_api, objects)
    other = copy.deepcopy(deployment(objects, "chat"))  # made by hand after the plan
    other["spec"]["selector"]["matchLabels"] = {"by": "hand"}
    fake_api.put(other, manager="kubectl")
    with pytest.raises(ApplyError, match=r"\+ Deployment/chat: the cluster answered 422") as caught:
        apply(fake_api, result)
    refs = [c.ref for c in result.changes]
    before = refs[: refs.index("Deployment/chat")]
    assert caught.value.done == tuple(f"+ {ref}" for ref in before)
    assert "spec.selector: field is immutable" in caught.value.message


def test_an_unreachable_cluster_is_an_error_with_a_fix(ctx: RenderContext) -> None:
    backend, namespace = ctx.environment.backend, ctx.namespace
    with (
        connect(backend, namespace=namespace, server="http://127.0.0.1:9") as client,
        pytest.raises(BackendError, match="not reachable") as caught,
    ):
        plan_objects(client, render(SPEC, ENV), owner=ctx.owner, namespace=namespace)
    assert "kubectl cluster-info" in (caught.value.hint or "")
