"""The gateway of an environment as a supervised local process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from llmfleet import __version__
from llmfleet.backends.base import ReplicaSpec
from llmfleet.engines.base import LaunchCommand, Probe


def gateway_spec(environment: str, body: dict[str, Any], *, socket_path: Path) -> ReplicaSpec:
    """A ReplicaSpec that runs ``python -m llmfleet.gateway`` for ``environment``.

    ``body`` carries host, port and optionally state_url/state_base_dir (for API keys).
    """
    host = str(body.get("host", "127.0.0.1"))
    port = int(body["port"])
    argv = [
        sys.executable,
        "-m",
        "llmfleet.gateway",
        "--environment",
        environment,
        "--host",
        host,
        "--port",
        str(port),
        "--agent-socket",
        str(socket_path),
    ]
    env = {str(k): str(v) for k, v in body.get("env", {}).items()}
    if body.get("state_url"):
        # In the environment, not argv: a URL may carry a password and argv is public (ps).
        env["LLMFLEET_STATE_URL"] = str(body["state_url"])
    if body.get("state_base_dir"):
        argv += ["--state-base-dir", str(body["state_base_dir"])]
    return ReplicaSpec(
        replica_id=f"gateway-{environment}",
        environment=environment,
        service="gateway",
        slot=0,
        runtime_hash="",
        engine="gateway",
        engine_version="",
        launch=LaunchCommand(argv=tuple(argv), env=env),
        readiness=(Probe("/health"),),
        liveness=Probe("/health"),
        metrics_path="/metrics",
        served_name="",
        config={"host": host, "port": port, "version": __version__},
        port=port,
    )
