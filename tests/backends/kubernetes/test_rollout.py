"""Waiting for a rollout as ``kubectl rollout status`` does, against recorded Deployment
status sequences played by the fake API server over a real watch stream."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmfleet.backends.kubernetes.applying import apply_objects
from llmfleet.backends.kubernetes.client import connect, connect_async
from llmfleet.backends.kubernetes.planning import plan_objects
from llmfleet.backends.kubernetes.rollout import failure_hint, rollout_verdict, wait_rollout
from llmfleet.errors import BackendError, ReplicaFailedError
from tests.backends.kubernetes.cases import context, render
from tests.backends.kubernetes.fake_api import FakeApiServer

RECORDINGS = Path(__file__).parent / "recordings"
CTX = context("init", "production")
NS = CTX.namespace
NO_GPU = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


def recording(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((RECORDINGS / f"{name}.yaml").read_text()))


def apply_chat(fake: FakeApiServer, replicas: int) -> dict[str, Any]:
    chat = next(o for o in render("init", "production")
                if o["kind"] == "Deployment" and o["metadata"]["name"] == "chat")  # fmt: skip
    chat = copy.deepcopy(chat)
    chat["spec"]["replicas"] = replicas
    with connect(CTX.environment.backend, namespace=NS, server=fake.url) as client:
        apply_objects(client, plan_objects(client, [chat], owner=CTX.owner, namespace=NS))
    return chat


async def wait(fake: FakeApiServer, timeout_s: float = 5.0) -> None:
    async with connect_async(CTX.environment.backend, namespace=NS, server=fake.url) as client:
        await wait_rollout(client, ["chat"], namespace=NS, timeout_s=timeout_s)


async def test_a_recorded_rollout_is_followed_to_its_end(fake_api: FakeApiServer) -> None:
    fake_api.after_apply("Deployment", "chat", recording("rollout-ok"), step_s=0.05)
    apply_chat(fake_api, replicas=2)
    await wait(fake_api)
    live = fake_api.get("Deployment", NS, "chat")
    assert live is not None and live["status"]["availableReplicas"] == 2


async def test_a_dropped_watch_is_watched_again_from_the_last_version(
    fake_api: FakeApiServer,
) -> None:
    fake_api.after_apply("Deployment", "chat", recording("rollout-ok"), step_s=0.2)
    apply_chat(fake_api, replicas=2)
    waiting = asyncio.create_task(wait(fake_api))
    assert await asyncio.to_thread(fake_api.watching.wait, 5)
    fake_api.drop_watches()
    await waiting
    watches = [p for m, p in fake_api.requests if "watch=true" in p]
    assert len(watches) >= 2 and "resourceVersion=" in watches[1]


async def test_a_progress_deadline_ends_the_wait_with_the_pods_reasons_and_the_fix(
    fake_api: FakeApiServer,
) -> None:
    fake_api.after_apply("Deployment", "chat", recording("rollout-no-gpu"))
    chat = apply_chat(fake_api, replicas=1)
    labels = chat["spec"]["selector"]["matchLabels"]
    fake_api.put({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "chat-5c4b-x2", "namespace": NS, "labels": labels},
                  "status": {"phase": "Pending"}})  # fmt: skip
    fake_api.put({"apiVersion": "v1", "kind": "Event",
                  "metadata": {"name": "chat-5c4b-x2.1", "namespace": NS},
                  "involvedObject": {"kind": "Pod", "name": "chat-5c4b-x2", "namespace": NS},
                  "reason": "FailedScheduling", "type": "Warning",
                  "message": NO_GPU})  # fmt: skip
    with pytest.raises(ReplicaFailedError, match="timed out progressing") as caught:
        await wait(fake_api)
    assert caught.value.log_tail == (f"pod chat-5c4b-x2: FailedScheduling: {NO_GPU}",)
    assert "rollout.strategy: replace" in (caught.value.hint or "")


async def test_a_rollout_that_never_settles_ends_at_the_timeout(fake_api: FakeApiServer) -> None:
    apply_chat(fake_api, replicas=1)  # no controller: the status never comes
    with pytest.raises(BackendError, match=r"did not roll out within 0\.3 s"):
        await wait(fake_api, timeout_s=0.3)


@pytest.mark.parametrize(
    ("status", "done", "failed", "words"),
    [
        ({"observedGeneration": 1}, False, False, "to be observed"),
        ({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 2},
         False, False, "1 of 2 new"),
        ({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 3}, False, False, "1 old"),
        ({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1},
         False, False, "1 of 2 updated pods available"),
        ({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2},
         True, False, "rolled out"),
        ({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "late"}]},
         False, True, "late"),
    ],
)  # fmt: skip
def test_the_verdict_reads_the_status_as_kubectl_does(
    status: dict[str, Any], done: bool, failed: bool, words: str
) -> None:
    body = {"metadata": {"name": "chat", "generation": 2}, "spec": {"replicas": 2},
            "status": status}  # fmt: skip
    verdict = rollout_verdict(body)
    assert (verdict.done, verdict.failed) == (done, failed)
    assert words in verdict.message


@pytest.mark.parametrize(
    ("reason", "fix"),
    [
        ("engine ImagePullBackOff: Back-off pulling image", "cannot be pulled"),
        ("engine last exited: OOMKilled (code 137)", "resources.memory"),
        ("engine CrashLoopBackOff", "llmfleet logs"),
        ("Unhealthy: Startup probe failed", "rollout.startup_s"),
        ("something new", "kubectl describe"),
    ],
)
def test_each_known_reason_has_its_fix(reason: str, fix: str) -> None:
    assert fix in failure_hint([reason])
