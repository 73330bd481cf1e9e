"""What the agent remembers of replicas that failed and were stopped: which ones, why,
and until when."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.local.failed import FailedReplicas, failure_reason

LOOPING = ReplicaStatus(
    replica_id="production-chat-0-abc123", environment="production", service="chat", slot=0,
    runtime_hash="h", engine="llamacpp", engine_version="11434.0.0",
    state=ReplicaState.CRASH_LOOP, port=20000, restarts=3, last_exit=-4,
)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, "crash-looping: it exited 3 times without becoming ready; last it was killed by "
             "SIGILL: the engine binary uses an instruction this CPU cannot run"),
        ({"state": ReplicaState.BACKOFF, "restarts": 1, "last_exit": 1},
         "it exited 1 time without becoming ready; last it exited with code 1"),
        ({"state": ReplicaState.STARTING, "restarts": 0, "last_exit": None},
         "it was stopped while still starting (it never became ready)"),
        ({"state": ReplicaState.READY, "ready_at": 1.0}, None),
    ],
)  # fmt: skip
def test_why_a_stopped_replica_failed(changes: dict[str, object], reason: str | None) -> None:
    said = failure_reason(replace(LOOPING, **changes))  # type: ignore[arg-type]
    assert said == reason or (said and reason and said.startswith(reason + ". Fix: "))


def test_a_failure_lasts_until_its_slot_starts_again_or_its_service_goes() -> None:
    failed = FailedReplicas()
    assert failed.record(LOOPING, now=5.0)
    assert not failed.record(replace(LOOPING, slot=1, ready_at=1.0), now=5.0)  # it served
    [kept] = failed.of("production")
    assert kept.stopped_at == 5.0 and kept.reason.startswith("crash-looping")
    again = FailedReplicas()
    again.load([*failed.to_json(), {"status": {}}])  # a malformed row is skipped
    assert [f.status for f in again.of()] == [LOOPING]
    failed.clear_slot("production", "chat", 0)
    assert failed.of() == []
    failed.record(LOOPING, now=6.0)
    failed.keep_services("staging", [])  # another environment's apply
    assert len(failed.of()) == 1
    failed.keep_services("production", ["summarise"])  # chat left the spec
    assert failed.of() == []
