"""JSON forms of the backend's dataclasses, for the agent's HTTP API and its state file.

Names that become file names and URL path segments (replica ids, services,
environments) are checked here: a replica id of ``../../x`` would put its log outside
the runtime's home, and one of ``*`` would match every log.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from llmfleet.backends.base import ReplicaSpec
from llmfleet.engines.base import ContainerSpec, LaunchCommand, Probe

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")
ID_RULE = "letters, digits, '-' and '_', starting with a letter or digit, at most 200 of them"


def check_id(field: str, value: object) -> str:
    """``value`` when it is safe as a file name and a path segment; else a ValueError
    that names ``field``. Pure."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise ValueError(f"{field} must be {ID_RULE}; got {value!r}")
    return value


def spec_to_json(spec: ReplicaSpec) -> dict[str, Any]:
    return asdict(spec)


def _probe(body: dict[str, Any]) -> Probe:
    return Probe(path=body["path"], body=body.get("body"), timeout_s=body.get("timeout_s", 5.0))


def spec_from_json(body: dict[str, Any]) -> ReplicaSpec:
    """Rebuild a ReplicaSpec; raises KeyError/TypeError/ValueError on a malformed body."""
    data = dict(body)
    for field in ("replica_id", "environment", "service"):
        check_id(field, data.get(field))
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
