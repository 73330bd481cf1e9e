"""A service whose replicas all failed is refused at once with why; one whose replica
may still become ready (starting, restarting) is waited for, as before."""

from __future__ import annotations

import asyncio

import pytest

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.admission import Router
from llmfleet.gateway.errors import ApiError
from llmfleet.gateway.replicas import Snapshot, snapshot_from_json
from llmfleet.spec.model import ServiceSpec

SPEC = ServiceSpec.model_validate(
    {"model": "sim:tiny", "engine": {"kind": "sim", "version": "1.2.0"},
     "retries": {"wait_for_replica_s": 30}}
)  # fmt: skip


def replica(state: ReplicaState, *, last_exit: int | None = None) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id="production-chat-0-abc123", environment="production", service="chat",
        slot=0, runtime_hash="h", engine="sim", engine_version="1.2.0", state=state,
        port=20000, restarts=3, last_exit=last_exit,
    )  # fmt: skip


def router(snapshot: Snapshot) -> Router:
    table = Router(is_ejected=lambda _: False, engine_waiting={},
                   clock=asyncio.get_running_loop().time)  # fmt: skip
    table.update(snapshot)
    return table


async def refusal(snapshot: Snapshot) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await asyncio.wait_for(router(snapshot).acquire("chat"), timeout=1)
    return caught.value


async def test_crash_looping_replicas_are_refused_at_once_naming_the_signal() -> None:
    looping = replica(ReplicaState.CRASH_LOOP, last_exit=-4)
    error = await refusal(Snapshot({"chat": SPEC}, [looping], generation=1))
    assert error.status == 503 and error.code == "no_ready_replica"
    assert "production-chat-0-abc123 is crash-looping (killed by SIGILL" in error.message
    assert "llmfleet logs chat" in error.message


async def test_replicas_a_failed_apply_stopped_are_named_with_their_reason() -> None:
    body = {
        "generation": 3,
        "services": {"chat": SPEC.model_dump(mode="json")},
        "replicas": [],
        "failed": [{"status": replica(ReplicaState.CRASH_LOOP, last_exit=1).to_json(),
                    "reason": "it exited 3 times; last it exited with code 1",
                    "stopped_at": 1.0}],
    }  # fmt: skip
    error = await refusal(snapshot_from_json(body))
    assert "failed and was stopped: it exited 3 times; last it exited with code 1" in error.message


@pytest.mark.parametrize("state", [ReplicaState.STARTING, ReplicaState.BACKOFF, None])
async def test_a_replica_that_may_come_is_waited_for(state: ReplicaState | None) -> None:
    """Starting, restarting, or none yet and nothing failed (an apply about to start it)."""
    replicas = [] if state is None else [replica(state)]
    waiting = router(Snapshot({"chat": SPEC}, replicas, generation=1)).acquire("chat")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(waiting, timeout=0.2)
