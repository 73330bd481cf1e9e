"""Wait for Deployments to roll out, the way ``kubectl rollout status`` does.

A rollout is done when the controller has seen the newest spec
(``observedGeneration``), every pod runs it (``updatedReplicas``), no old pod is
left and all are available. It has failed when the Deployment's ``Progressing``
condition says ``ProgressDeadlineExceeded`` (the spec's startup budget plus a
margin): then the error carries the pods' reasons and events, and the fix.
``rollout_verdict`` and ``failure_hint`` are pure; ``wait_rollout`` watches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmfleet.backends.kubernetes.client import Manifest, to_manifest, translated
from llmfleet.errors import BackendError, ReplicaFailedError

DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
FIXES = (
    ("Insufficient nvidia.com/gpu", "no node has a free GPU for the new pod: with rollout "
     "strategy surge a spare GPU is needed; set rollout.strategy: replace, or add a GPU node"),
    ("ImagePull", "the image cannot be pulled: check its name and tag, and an imagePullSecret "
     "for a private registry"),
    ("ErrImage", "the image cannot be pulled: check its name and tag"),
    ("OOMKilled", "the engine ran out of memory: raise resources.memory or pick a smaller model"),
    ("CrashLoopBackOff", "the engine exits at start: read its last log lines above "
     "(llmfleet logs SERVICE)"),
    ("Unhealthy", "the engine does not pass its probes in time: raise rollout.startup_s if "
     "the model loads slowly"),
    ("FailedScheduling", "no node can take the pod: check its GPU type, tolerations and requests"),
)  # fmt: skip
"""(word in a pod's reason or event, the fix), most specific first."""


@dataclass(frozen=True)
class Verdict:
    done: bool
    failed: bool
    message: str


def rollout_verdict(deployment: Manifest) -> Verdict:
    """Where a Deployment's rollout stands, as kubectl words it; pure."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    name = deployment["metadata"]["name"]
    generation = deployment["metadata"].get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return Verdict(False, False, f"{name}: waiting for the rollout to be observed")
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Progressing" and condition.get("reason") == DEADLINE_EXCEEDED:
            return Verdict(False, True, f"{name}: {condition.get('message') or DEADLINE_EXCEEDED}")
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < wanted:
        return Verdict(False, False, f"{name}: {updated} of {wanted} new pods updated")
    if status.get("replicas", 0) > updated:
        old = status.get("replicas", 0) - updated
        return Verdict(False, False, f"{name}: {old} old pods pending termination")
    available = status.get("availableReplicas", 0)
    if available < updated:
        return Verdict(False, False, f"{name}: {available} of {updated} updated pods available")
    return Verdict(True, False, f"{name}: rolled out")


def failure_hint(reasons: Sequence[str]) -> str:
    """The fix for the first reason a known word appears in; pure."""
    for word, fix in FIXES:
        if any(word in reason for reason in reasons):
            return fix
    return "kubectl describe pods of the Deployment shows what keeps them from being ready"


async def wait_rollout(
    client: Any, names: Sequence[str], *, namespace: str, timeout_s: float
) -> None:
    """Wait until every Deployment in ``names`` has rolled out (the loop's clock).

    Raises ``ReplicaFailedError`` (the pods' reasons and events, the fix) when one
    exceeds its progress deadline, ``BackendError`` when ``timeout_s`` passes first."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    for name in names:
        try:
            async with asyncio.timeout_at(deadline):
                await _wait_one(client, name, namespace)
        except TimeoutError as exc:
            raise BackendError(
                f"Deployment {name} did not roll out within {timeout_s:g} s",
                hint=f"kubectl -n {namespace} rollout status deployment/{name}",
            ) from exc


async def _wait_one(client: Any, name: str, namespace: str) -> None:
    """Read the Deployment, then follow its watch until it settles (lightkube watches
    again from the last version seen when a stream ends, and from scratch after 410)."""
    from lightkube.resources.apps_v1 import Deployment

    with translated(f"waiting for Deployment {name}"):
        found = await client.get(Deployment, name, namespace=namespace)
        body = to_manifest(found, api_version="apps/v1", kind="Deployment")
        if await _settled(client, body):
            return
        version = body["metadata"]["resourceVersion"]
        async for _type, obj in client.watch(
            Deployment, namespace=namespace, fields={"metadata.name": name},
            resource_version=version,
        ):  # fmt: skip
            if await _settled(client, to_manifest(obj, api_version="apps/v1", kind="Deployment")):
                return


async def _settled(client: Any, body: Manifest) -> bool:
    verdict = rollout_verdict(body)
    if verdict.failed:
        raise await _failure(client, body, verdict.message)
    return verdict.done


async def _failure(client: Any, deployment: Manifest, message: str) -> ReplicaFailedError:
    from lightkube.resources.core_v1 import Event, Pod

    namespace = deployment["metadata"]["namespace"]
    labels = deployment["spec"]["selector"]["matchLabels"]
    reasons: list[str] = []
    async for pod in client.list(Pod, namespace=namespace, labels=labels):
        body = to_manifest(pod, api_version="v1", kind="Pod")
        pod_name = body["metadata"]["name"]
        reasons += [f"pod {pod_name}: {r}" for r in pod_reasons(body)]
        fields = {"involvedObject.name": pod_name}
        async for event in client.list(Event, namespace=namespace, fields=fields):
            reasons.append(f"pod {pod_name}: {event.reason}: {event.message}")
    return ReplicaFailedError(
        f"the rollout of {message}", log_tail=reasons, hint=failure_hint(reasons)
    )


def pod_reasons(pod: Manifest) -> list[str]:
    """Why a pod's containers are not running: waiting reasons and last terminations."""
    reasons = []
    status = pod.get("status") or {}
    for container in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        state = container.get("state") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        if waiting := state.get("waiting"):
            reasons.append(f"{container['name']} {waiting.get('reason')}: "
                           f"{waiting.get('message', '')}".rstrip(": "))  # fmt: skip
        if last.get("reason"):
            reasons.append(f"{container['name']} last exited: {last['reason']} "
                           f"(code {last.get('exitCode')})")  # fmt: skip
    return reasons
