"""``AgentAdapter``: an agent's code behind the ``EngineAdapter`` protocol.

An agent is not an inference engine, but it is run exactly like one: a process
on ``{port}`` that the local agent starts, probes on its health path, restarts
with back-off, drains and stops. ``entrypoint: package.module:app`` runs as
uvicorn in ``python -m llmfleet.engines.agent_serve`` on this Python (uvicorn
is one of llmfleet's own dependencies); ``command:`` runs as written with
``{port}`` filled in. What it may call and read reaches it through its environment
(``apply.agents``), never its argv, which every local user can read.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmfleet.engines.agent_serve import METRICS_PATH, RUNNING_SERIES
from llmfleet.engines.base import ContainerSpec, LaunchCommand, MetricMap, Probe, Progress
from llmfleet.errors import EngineUnavailableError
from llmfleet.spec.agents import PORT_PLACEHOLDER, AgentRuntime
from llmfleet.spec.model import EngineKind, ServiceSpec

AGENT_METRICS = MetricMap(names={}, running_series=RUNNING_SERIES)
"""An entrypoint's requests in flight (``agent_serve``), so a drain waits for them."""


def agent_of(service: ServiceSpec) -> AgentRuntime:
    if service.agent is None:  # the spec refuses engine kind agent without agents:
        raise EngineUnavailableError("engine kind agent is for services made of agents:")
    return service.agent


def health_probes(service: ServiceSpec) -> tuple[Probe, ...] | None:
    """An agent's own health path as readiness and liveness; None for other services."""
    if service.agent is None:
        return None
    return (Probe(service.agent.health_path),)


class AgentAdapter:
    """Runs an agent's ASGI app or command; stateless, nothing to install."""

    kind: EngineKind = EngineKind.AGENT
    needs_model_file: bool = False
    readiness: tuple[Probe, ...] = (Probe("/health"),)
    liveness: Probe = Probe("/health")
    metrics_path: str = METRICS_PATH
    metrics: MetricMap = AGENT_METRICS

    def check_runnable(self, service: ServiceSpec) -> None:
        agent_of(service)

    def install(self, version: str, *, cache_dir: Path, progress: Progress) -> Path:
        """Nothing to install: an entrypoint runs on this Python."""
        return Path(sys.executable)

    def installed(self, version: str, *, cache_dir: Path) -> Path | None:
        return Path(sys.executable)

    def available_versions(self) -> list[str]:
        return []

    def local_command(
        self, service: ServiceSpec, *, executable: Path, model_path: Path | None, served_name: str
    ) -> LaunchCommand:
        """uvicorn on 127.0.0.1:{port}, or the agent's command with {port} in place."""
        agent = agent_of(service)
        serve = (str(executable), "-m", "llmfleet.engines.agent_serve")
        if agent.command is None:
            assert agent.entrypoint is not None  # one of the two, checked by the spec
            argv: tuple[str, ...] = (*serve, "--app", agent.entrypoint, "--port", PORT_PLACEHOLDER)
        elif agent.working_dir is not None:
            argv = (*serve, "--exec", "--", *agent.command)
        else:
            argv = agent.command
        return LaunchCommand(argv=argv, env=dict(agent.env), api_key_env=None)

    def container(self, service: ServiceSpec, *, model_uri: str, served_name: str) -> ContainerSpec:
        raise EngineUnavailableError(
            "an agent runs in its own image: no engine container is made for it",
            hint="the Kubernetes backend renders agents itself (backends.kubernetes.agents)",
        )

    def continuation_fields(self) -> Mapping[str, Any]:
        return {}
