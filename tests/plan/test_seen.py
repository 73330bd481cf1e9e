"""A plan records what it saw of the runtime, so a saved plan applied after the runtime
changed (a `down`, a replica gone) is refused instead of recording a success over
nothing; and a spec change is never called drift."""

from __future__ import annotations

from dataclasses import replace

from llmfleet.backends.base import ReplicaState
from llmfleet.plan.diff import ActualEnvironment, plan_changes, plan_destroy
from llmfleet.plan.model import Plan
from llmfleet.plan.seen import seen_runtime
from tests.plan.test_diff import converged, env, service


def test_the_plan_records_what_runs_and_keeps_it_in_its_file() -> None:
    desired = env(chat=service(replicas=2))
    actual = converged(desired)
    plan = plan_changes(desired, actual, serial=3, spec_hash="h")
    assert plan.seen == seen_runtime(actual)
    assert "2 replicas" in plan.seen.summary and "gateway" in plan.seen.summary
    assert Plan.from_json(plan.to_json()).seen == plan.seen
    assert plan_destroy("production", actual, serial=3).seen == plan.seen


def test_what_a_plan_saw_changes_with_what_runs_not_with_passing_states() -> None:
    desired = env(chat=service(replicas=2))
    actual = converged(desired)
    before = seen_runtime(actual).digest
    flipped = [replace(r, state=ReplicaState.UNHEALTHY, restarts=3) for r in actual.replicas]
    assert seen_runtime(replace(actual, replicas=flipped)).digest == before
    reordered = replace(actual, replicas=list(reversed(actual.replicas)))
    assert seen_runtime(reordered).digest == before
    assert seen_runtime(ActualEnvironment()).digest != before  # after `down`
    assert seen_runtime(ActualEnvironment()).summary == "nothing running"
    assert seen_runtime(replace(actual, replicas=actual.replicas[:1])).digest != before
    assert seen_runtime(replace(actual, gateway=None)).digest != before
    stopped = [replace(actual.replicas[0], state=ReplicaState.STOPPED), actual.replicas[1]]
    assert seen_runtime(replace(actual, replicas=stopped)).digest != before


def test_a_scale_up_is_a_spec_change_not_drift() -> None:
    """2 -> 3 replicas: the new slot is 'replicas: 2 -> 3', never 'not running (drift)'."""
    actual = converged(env(chat=service(replicas=2)))
    plan = plan_changes(
        env(chat=service(replicas=3)), actual, serial=3, spec_hash="h",
        recorded_replicas={"chat": 2},
    )  # fmt: skip
    (create,) = plan.actions
    assert create.slot == 2 and create.reasons == ("replicas: 2 -> 3",)


def test_a_replica_that_vanished_is_still_drift() -> None:
    desired = env(chat=service(replicas=2))
    actual = converged(desired)
    gone = replace(actual, replicas=actual.replicas[:1])
    plan = plan_changes(desired, gone, serial=3, spec_hash="h", recorded_replicas={"chat": 2})
    (create,) = plan.actions
    assert create.slot == 1 and "drift" in create.reasons[0]
