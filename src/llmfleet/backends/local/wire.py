"""JSON forms of the backend's dataclasses, for the agent's HTTP API and its state file."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from llmfleet.backends.base import ReplicaSpec
from llmfleet.engines.base import ContainerSpec, LaunchCommand, Probe


def spec_to_json(spec: ReplicaSpec) -> dict[str, Any]:
    return asdict(spec)


def _probe(body: dict[str, Any]) -> Probe:
    return Probe(path=body["path"], body=body.get("body"), timeout_s=body.get("timeout_s", 5.0))


def spec_from_json(body: dict[str, Any]) -> ReplicaSpec:
    """Rebuild a ReplicaSpec; raises KeyError/TypeError on a malformed body."""
    data = dict(body)
    launch = data["launch"]
    data["launch"] = LaunchCommand(
        argv=tuple(launch["argv"]),
        env=dict(launch.get("env", {})),
        api_key_env=launch.get("api_key_env"),
    )
    data["readiness"] = tuple(_probe(p) for p in data.get("readiness", ()))
    data["liveness"] = _probe(data["liveness"])
    data["busy_series"] = tuple(data.get("busy_series", ()))
    container = data.get("container")
    if container is not None:
        data["container"] = ContainerSpec(
            image=container["image"],
            args=tuple(container["args"]),
            port=container["port"],
            env=dict(container.get("env", {})),
        )
    return ReplicaSpec(**data)
