"""plan_changes: every planning case, and the invariant that apply-then-plan is a no-op."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from llmfleet import __version__
from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.plan.diff import (
    ActualEnvironment,
    field_changes,
    plan_changes,
    plan_destroy,
    runtime_config,
)
from llmfleet.plan.model import Op, Plan, Target
from llmfleet.spec.model import GatewaySpec, ResolvedEnvironment, ServiceSpec
from llmfleet.spec.observability import Webhook

_ids = itertools.count()


def service(
    *,
    replicas: int = 2,
    version: str = "1.0.0",
    slots: int = 4,
    strategy: str = "least-load",
    labels: dict[str, str] | None = None,
) -> ServiceSpec:
    return ServiceSpec.model_validate(
        {
            "model": "sim:tiny",
            "engine": {"kind": "sim", "version": version},
            "replicas": replicas,
            "slots": slots,
            "routing": {"strategy": strategy},
            "labels": labels or {},
        }
    )


def env(**services: ServiceSpec) -> ResolvedEnvironment:
    return ResolvedEnvironment(name="production", gateway=GatewaySpec(port=8080), services=services)


def running(
    name: str, svc: ServiceSpec, slot: int, *, state: ReplicaState = ReplicaState.READY
) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"production-{name}-{slot}-{next(_ids)}",
        environment="production",
        service=name,
        slot=slot,
        runtime_hash=svc.runtime_hash(),
        engine="sim",
        engine_version=svc.engine.version,
        state=state,
        port=20000 + next(_ids),
        started_at=float(next(_ids)),
        config=runtime_config(svc),
    )


def gateway(port: int = 8080) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id="gateway-production",
        environment="production",
        service="gateway",
        slot=0,
        runtime_hash="",
        engine="gateway",
        engine_version="",
        state=ReplicaState.READY,
        port=port,
        config={"host": "127.0.0.1", "port": port, "version": __version__},
    )


def converged(desired: ResolvedEnvironment) -> ActualEnvironment:
    replicas = [running(n, s, i) for n, s in desired.services.items() for i in range(s.replicas)]
    services = {n: s.model_dump(mode="json") for n, s in desired.services.items()}
    return ActualEnvironment(
        replicas=replicas,
        services=services,
        gateway=gateway(),
        observability=desired.observability.model_dump(mode="json"),
    )


def make_plan(desired: ResolvedEnvironment, actual: ActualEnvironment, **kw: object) -> Plan:
    return plan_changes(desired, actual, serial=3, spec_hash="h", **kw)  # type: ignore[arg-type]


def ops(plan: Plan) -> list[tuple[str, str, str]]:
    return [(str(a.op), str(a.target), a.address) for a in plan.actions]


def test_nothing_running_creates_every_replica_and_the_gateway() -> None:
    plan = make_plan(env(chat=service(replicas=2)), ActualEnvironment())
    assert ops(plan) == [
        ("create", "replica", "chat[0]"),
        ("create", "replica", "chat[1]"),
        ("create", "gateway", "gateway"),
    ]
    assert plan.actions[0].reasons == ("new replica",)
    assert plan.serial == 3
    assert plan.summary() == "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete."


def test_converged_fleet_plans_nothing() -> None:
    desired = env(chat=service())
    plan = make_plan(desired, converged(desired))
    assert not plan.has_changes
    assert plan.summary().startswith("No changes")


def test_engine_version_change_replaces_each_replica_with_the_field_as_reason() -> None:
    old = env(chat=service(version="1.0.0"))
    plan = make_plan(env(chat=service(version="1.1.0")), converged(old))
    assert [a.op for a in plan.actions] == [Op.REPLACE, Op.REPLACE]
    assert plan.actions[0].reasons == ("engine.version: 1.0.0 -> 1.1.0",)
    assert all(a.replica_id for a in plan.actions)


def test_routing_change_is_an_in_place_update_not_a_replace() -> None:
    old = env(chat=service())
    plan = make_plan(env(chat=service(strategy="round-robin")), converged(old))
    assert ops(plan) == [("update", "service", "service chat")]
    assert plan.actions[0].reasons == ("routing.strategy: least-load -> round-robin",)


def test_label_change_is_in_place() -> None:
    old = env(chat=service())
    plan = make_plan(env(chat=service(labels={"team": "a"})), converged(old))
    assert [a.op for a in plan.actions] == [Op.UPDATE]


def test_scaling_down_deletes_the_highest_slots() -> None:
    old = env(chat=service(replicas=3))
    plan = make_plan(env(chat=service(replicas=1)), converged(old))
    assert ops(plan) == [("delete", "replica", "chat[1]"), ("delete", "replica", "chat[2]")]
    assert plan.actions[0].reasons == ("replicas: 3 -> 1",)


def test_dead_replica_is_drift_and_recreated() -> None:
    desired = env(chat=service(replicas=2))
    actual = converged(desired)
    actual = replace(actual, replicas=[actual.replicas[0]])
    plan = make_plan(desired, actual)
    assert ops(plan) == [("create", "replica", "chat[1]")]
    assert plan.actions[0].reasons == ("replica is not running (drift)",)


def test_recorded_service_with_nothing_running_is_drift() -> None:
    desired = env(chat=service(replicas=1))
    plan = make_plan(
        desired, ActualEnvironment(gateway=gateway()), recorded_services=frozenset({"chat"})
    )
    assert plan.actions[0].reasons == ("replica is not running (drift)",)


def test_replica_changed_by_hand_is_replaced() -> None:
    desired = env(chat=service())
    actual = converged(desired)
    tampered = replace(actual.replicas[1], runtime_hash="handmade", config={})
    actual = replace(actual, replicas=[actual.replicas[0], tampered])
    plan = make_plan(desired, actual)
    assert [(a.op, a.slot) for a in plan.actions] == [(Op.REPLACE, 1)]


def test_duplicate_replica_of_a_slot_is_deleted_keeping_the_ready_one() -> None:
    desired = env(chat=service(replicas=1))
    actual = converged(desired)
    leftover = running("chat", desired.services["chat"], 0, state=ReplicaState.STARTING)
    plan = make_plan(desired, replace(actual, replicas=[*actual.replicas, leftover]))
    assert [(a.op, a.replica_id) for a in plan.actions] == [(Op.DELETE, leftover.replica_id)]


def test_removed_service_deletes_its_replicas_and_config() -> None:
    old = env(chat=service(replicas=1), summary=service(replicas=1))
    plan = make_plan(env(chat=service(replicas=1)), converged(old))
    assert ops(plan) == [
        ("delete", "replica", "summary[0]"),
        ("delete", "service", "service summary"),
    ]


def test_a_crash_looping_replica_is_a_replace_that_says_why() -> None:
    """A replica that keeps dying does not serve: plan shows it as a change (it said
    'No changes' with a note), and apply starts it again from scratch, as Terraform
    replaces a tainted resource; a replica merely restarting (backoff) is no change."""
    desired = env(chat=service(replicas=1))
    actual = converged(desired)
    looping = replace(actual.replicas[0], state=ReplicaState.CRASH_LOOP, restarts=7, last_exit=1)
    plan = make_plan(desired, replace(actual, replicas=[looping]))
    assert [(a.op, a.replica_id) for a in plan.actions] == [(Op.REPLACE, looping.replica_id)]
    (reason,) = plan.actions[0].reasons
    assert "crash-looping" in reason and "7 restarts" in reason and "exited with code 1" in reason
    assert "llmfleet logs chat" in reason
    restarting = replace(actual.replicas[0], state=ReplicaState.BACKOFF, restarts=1)
    assert not make_plan(desired, replace(actual, replicas=[restarting])).has_changes


def test_gateway_port_change_replaces_the_gateway() -> None:
    desired = env(chat=service())
    actual = replace(converged(desired), gateway=gateway(port=9999))
    plan = make_plan(desired, actual)
    assert ops(plan) == [("replace", "gateway", "gateway")]
    assert plan.actions[0].reasons == ("port: 9999 -> 8080",)


def test_observability_only_change_is_an_in_place_update() -> None:
    desired = env(chat=service())
    actual = converged(desired)
    changed = desired.model_copy(
        update={
            "observability": desired.observability.model_copy(
                update={
                    "trace_sample_ratio": 1.0,
                    "webhooks": (Webhook(url="https://hooks.example/T0/secret-token"),),
                }
            )
        }
    )
    plan = make_plan(changed, actual)
    assert ops(plan) == [("update", "observability", "observability")]
    reasons = plan.actions[0].reasons
    assert "trace_sample_ratio: 0.1 -> 1.0" in reasons
    assert "webhooks: changed" in reasons
    assert not any("secret-token" in r for r in reasons)


def test_observability_of_an_environment_that_does_not_run_plans_nothing_extra() -> None:
    plan = make_plan(env(chat=service()), ActualEnvironment())
    assert "observability" not in [a.address for a in plan.actions]


def test_destroy_deletes_everything() -> None:
    actual = converged(env(chat=service(replicas=2)))
    plan = plan_destroy("production", actual, serial=4)
    assert [a.op for a in plan.actions] == [Op.DELETE] * 4
    assert plan.actions[-1].target is Target.GATEWAY


def test_plan_json_round_trip() -> None:
    plan = make_plan(env(chat=service()), ActualEnvironment())
    assert Plan.from_json(plan.to_json()) == plan


def test_field_changes_nested_and_unset() -> None:
    assert field_changes({"a": {"b": 1}, "c": None}, {"a": {"b": 2}, "c": "x"}) == [
        "a.b: 1 -> 2",
        "c: null -> x",
    ]


# --- the invariant: applying a plan and planning again yields only no-ops -----------------


def simulate_apply(
    plan: Plan, desired: ResolvedEnvironment, actual: ActualEnvironment
) -> ActualEnvironment:
    """What a correct backend looks like after executing ``plan`` (a small honest fake)."""
    replicas = {r.replica_id: r for r in actual.replicas}
    for action in plan.actions:
        if action.target is Target.REPLICA:
            if action.replica_id:
                replicas.pop(action.replica_id)
            if action.op in (Op.CREATE, Op.REPLACE):
                assert action.service is not None and action.slot is not None
                new = running(action.service, desired.services[action.service], action.slot)
                replicas[new.replica_id] = new
    services = {n: s.model_dump(mode="json") for n, s in desired.services.items()}
    return ActualEnvironment(
        replicas=list(replicas.values()),
        services=services,
        gateway=gateway(),
        observability=desired.observability.model_dump(mode="json"),
    )


names = st.sampled_from(["chat", "summary", "embed", "agent"])
services = st.builds(
    lambda replicas, version, slots, strategy: service(
        replicas=replicas, version=version, slots=slots, strategy=strategy
    ),
    replicas=st.integers(1, 3),
    version=st.sampled_from(["1.0.0", "1.1.0"]),
    slots=st.integers(1, 4),
    strategy=st.sampled_from(["least-load", "round-robin"]),
)
environments = st.dictionaries(names, services, max_size=3).map(lambda s: env(**s))


@settings(max_examples=150, deadline=None)
@given(before=environments, after=environments, kill=st.sets(st.integers(0, 8), max_size=3))
def test_apply_then_plan_is_a_no_op(
    before: ResolvedEnvironment, after: ResolvedEnvironment, kill: set[int]
) -> None:
    actual = converged(before)
    survivors = [r for i, r in enumerate(actual.replicas) if i not in kill]
    actual = replace(actual, replicas=survivors)
    plan = make_plan(after, actual)
    again = make_plan(after, simulate_apply(plan, after, actual))
    assert not again.has_changes, again.actions


def agent(*, replicas: int = 1, concurrency: int = 16, auth: bool = False,
          entrypoint: str = "pkg.mod:app") -> ServiceSpec:  # fmt: skip
    """An agent as the spec resolves it (``spec.agent_services``)."""
    from textwrap import dedent

    from llmfleet.spec import load_spec_text

    text = dedent(f"""\
        services:
          chat: {{model: "sim:tiny", engine: {{kind: sim, version: "1.0.0"}}}}
        agents:
          helper:
            entrypoint: {entrypoint}
            models: [chat]
            replicas: {replicas}
            concurrency: {concurrency}
            auth: {{required: {str(auth).lower()}}}
    """)
    return load_spec_text(text).resolved.environment("production").services["helper"]


def test_scaling_an_agent_adds_a_replica_and_its_gateway_settings_change_in_place() -> None:
    """As a model service: more replicas are created beside the running ones, and what
    only the gateway reads (how many requests in flight, whether a key is needed) is
    updated in place. Before, both replaced every replica of the agent, and with them
    their keys."""
    old = env(helper=agent())
    scaled = make_plan(env(helper=agent(replicas=2)), converged(old))
    assert ops(scaled) == [("create", "replica", "helper[1]")]
    settings = make_plan(env(helper=agent(concurrency=32, auth=True)), converged(old))
    assert [(a.op, a.target) for a in settings.actions] == [(Op.UPDATE, Target.SERVICE)]
    assert set(settings.actions[0].reasons) == {"slots: 16 -> 32", "auth.required: false -> true"}
    program = make_plan(env(helper=agent(entrypoint="pkg.other:app")), converged(old))
    assert [a.op for a in program.actions] == [Op.REPLACE]
