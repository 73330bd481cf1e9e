"""Pods as status shows them: the state, the node and why a pod is not ready."""

from __future__ import annotations

from typing import Any

from llmfleet.backends.base import ReplicaState
from llmfleet.backends.kubernetes.observing import pod_replicas
from llmfleet.backends.kubernetes.rollout import failure_hint


def pod(name: str, status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"llmfleet.io/service": "chat"}, **meta},
        "spec": {"nodeName": "gpu-1", "containers": [
            {"name": "engine", "image": "vllm/vllm-openai:v0.11.0",
             "ports": [{"containerPort": 8000}]}]},
        "status": status,
    }  # fmt: skip


def waiting(reason: str, restarts: int = 0) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "engine", "restartCount": restarts,
                                   "state": {"waiting": {"reason": reason}}}]}  # fmt: skip


def test_each_state_and_reason_a_person_acts_on() -> None:
    unschedulable = {"conditions": [{"type": "PodScheduled", "status": "False",
                                     "message": "0/3 nodes are available: 3 Insufficient "
                                     "nvidia.com/gpu."}]}  # fmt: skip
    ready = {"podIP": "10.0.0.7", "conditions": [{"type": "Ready", "status": "True"}]}
    pods = [
        pod("chat-a", ready),
        pod("chat-b", waiting("CrashLoopBackOff", restarts=4)),
        pod("chat-c", waiting("ImagePullBackOff")),
        pod("chat-d", unschedulable),
        pod("chat-e", ready, deletionTimestamp="2026-12-05T12:00:00Z"),
    ]
    a, b, c, d, e = pod_replicas(pods, environment="production")
    assert (a.state, a.host, a.port, a.config["node"]) == (ReplicaState.READY, "10.0.0.7", 8000,
                                                           "gpu-1")  # fmt: skip
    assert a.engine_version == "v0.11.0" and [r.slot for r in (a, b, c)] == [0, 1, 2]
    assert (b.state, b.restarts) == (ReplicaState.CRASH_LOOP, 4)
    assert c.state is ReplicaState.STARTING and "ImagePullBackOff" in c.log_tail[0]
    assert "Insufficient nvidia.com/gpu" in d.log_tail[0]
    assert "rollout.strategy: replace" in failure_hint(d.log_tail)
    assert e.state is ReplicaState.DRAINING
