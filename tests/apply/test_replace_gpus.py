"""A rolling replace on a machine whose GPUs are all held: the old replica gives its GPUs
to the new one (drained first) instead of the update being refused."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from llmfleet.backends.local import rolling
from llmfleet.errors import GpuShortageError, ReplicaFailedError
from llmfleet.plan.model import Action, Op, Target
from llmfleet.spec.placement import Rollout


class Backend:
    """Records calls; ``short``: no GPU is free until the old replica stops."""

    def __init__(self, *, short: bool, starts: bool = True) -> None:
        self.short, self.starts = short, starts
        self.calls: list[tuple[str, str]] = []

    def start_replica(self, spec: Any) -> None:
        self.calls.append(("start", spec.replica_id))
        if self.short and ("stop", "old") not in self.calls:
            raise GpuShortageError(
                "replica new needs 1 GPU(s); this machine has 1, 0 free (held: GPU 0: old)"
            )

    def stop_replica(self, replica_id: str, *, drain_timeout_s: float) -> None:
        self.calls.append(("stop", replica_id))

    def wait_ready(self, replica_ids: list[str], *, timeout_s: float) -> None:
        if not self.starts:
            raise ReplicaFailedError("replica new is crash-looping")

    def list_replicas(self) -> list[Any]:
        return []


def replace(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(
        rolling,
        "replica_spec",
        lambda environment, slot, prepared: SimpleNamespace(replica_id="new"),
    )
    plan = SimpleNamespace(
        environment="p",
        actions=[Action(Op.REPLACE, Target.REPLICA, service="chat", slot=0, replica_id="old")],
    )
    progress: list[str] = []
    ctx = SimpleNamespace(progress=progress.append, done=[])
    prepared = {"chat": SimpleNamespace(service=SimpleNamespace(rollout=Rollout()))}
    rolling.replace_replicas(backend, plan, prepared, ctx)  # type: ignore[arg-type]
    assert ctx.done == ["-/+ chat[0]"]
    return progress


def test_with_gpus_to_spare_the_new_replica_is_ready_before_the_old_one_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = Backend(short=False)
    replace(backend, monkeypatch)
    assert backend.calls == [("start", "new"), ("stop", "old")]


def test_without_a_free_gpu_the_old_replica_is_drained_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = Backend(short=True)
    progress = replace(backend, monkeypatch)
    assert backend.calls == [("start", "new"), ("stop", "old"), ("start", "new")]
    assert any("no free GPU beside old" in line for line in progress)


def test_a_new_replica_that_fails_in_place_says_the_old_one_was_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = Backend(short=True, starts=False)
    with pytest.raises(ReplicaFailedError) as caught:
        replace(backend, monkeypatch)
    assert backend.calls[-1] == ("stop", "new")
    assert "old was stopped to free its GPUs" in caught.value.message
    assert "llmfleet rollback" in caught.value.message
