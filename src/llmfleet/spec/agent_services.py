"""Agents as services of each environment, and what their names refer to; pure.

An agent becomes a ``ServiceSpec`` of engine kind ``agent`` with the agent's
runtime on it (``ServiceSpec.agent``), so everything downstream of the spec
(plan, apply, status, the gateway's routes) handles it as it handles a model.
Its gateway settings suit a program that calls models itself: a broken answer
is not resumed (an agent cannot continue a partial answer the way an engine
does) and every request goes through as the client sent it.
"""

from __future__ import annotations

from llmfleet.spec.agents import AgentProgram, AgentRuntime, AgentSpec
from llmfleet.spec.model import EngineKind, FleetSpec, ServiceSpec
from llmfleet.spec.placement import BackendKind
from llmfleet.spec.problems import Finding, unknown_name

AGENT_ENGINE_VERSION = "1"


def agent_services(spec: FleetSpec, environment: str) -> dict[str, ServiceSpec]:
    """Each agent of ``spec`` as the service ``environment`` runs."""
    return {
        name: agent_service(name, agent, spec=spec, environment=environment)
        for name, agent in spec.agents.items()
    }


def agent_service(name: str, agent: AgentSpec, *, spec: FleetSpec, environment: str) -> ServiceSpec:
    uris = {
        index: spec.indexes[index].location(name=index, environment=environment)
        for index in agent.indexes
        if index in spec.indexes
    }
    # replicas, admission and the suites go on the service, as a model's do: changing
    # them must not replace the agent's replicas (a changed program does)
    body = agent.model_dump(include=set(AgentProgram.model_fields))
    runtime = AgentRuntime.model_validate({**body, "index_uris": uris})
    return ServiceSpec.model_validate(
        {
            # an agent has no weights: the sim: scheme is the one that names no file
            "model": {"source": f"sim:agent-{name}"},
            "engine": {"kind": EngineKind.AGENT.value, "version": AGENT_ENGINE_VERSION},
            "replicas": agent.replicas,
            "resources": agent.resources.model_dump(),
            "slots": agent.concurrency,
            "auth": {"required": agent.auth.required},
            "retries": {"resume_streams": False, "resume_non_streaming": False},
            "labels": {"llmfleet.agent": name},
            "agent": runtime,
            "validation": agent.validation,
        }
    )


def agent_references(spec: FleetSpec) -> list[Finding]:
    """Every agent whose name is taken or whose models or indexes name nothing."""
    findings = [
        Finding(
            ("agents", name),
            f"'{name}' is already a service; an agent needs a name "
            "of its own (clients ask the gateway for either by name)",
        )
        for name in spec.agents
        if name in spec.services
    ]
    findings += _cluster_agents(spec)
    for name, agent in spec.agents.items():
        others = [*spec.services, *(a for a in spec.agents if a != name)]
        for at, model in enumerate(agent.models):
            if model == name and name not in spec.services:
                message = "an agent cannot call itself"
            elif model not in others and model != name:
                message = unknown_name("service", model, others)
            else:
                continue
            findings.append(Finding(("agents", name, "models", at), message))
        for at, index in enumerate(agent.indexes):
            if index not in spec.indexes:
                message = unknown_name("index", index, spec.indexes)
                findings.append(Finding(("agents", name, "indexes", at), message))
    return findings


def _cluster_agents(spec: FleetSpec) -> list[Finding]:
    """What an agent needs to run on a Kubernetes environment: an image with its code,
    nothing of this machine's (folders, an index at a path), and a cluster gateway that
    checks the agent's scoped key in the state store (``state_secret``)."""
    clusters = [n for n, e in spec.environments.items() if e.backend.kind is BackendKind.KUBERNETES]
    if not clusters or not spec.agents:
        return []
    where = f"environment '{clusters[0]}' runs on Kubernetes"
    findings = [
        Finding(
            ("environments", env, "backend"),
            f"environment '{env}' runs agents, whose API keys its gateway checks in the state "
            "store: give backend.state_secret, the Secret whose key `url` holds the state URL "
            "(the same database this machine's state: names)",
        )
        for env in clusters
        if spec.environments[env].backend.state_secret is None
    ]
    for name, agent in spec.agents.items():
        if agent.image is None:
            findings.append(
                Finding(
                    ("agents", name),
                    f"{where}, where an agent runs in a container: give image: (any image "
                    "serving HTTP for command:, or one built FROM llmfleet's image with your "
                    "package installed for entrypoint:)",
                )
            )
        for field in ("working_dir", "python_path"):
            if getattr(agent, field):
                findings.append(
                    Finding(
                        ("agents", name, field),
                        f"{where}: {field} names folders of this machine; put the code in "
                        "the agent's image (WORKDIR and PYTHONPATH in its Dockerfile)",
                    )
                )
        for at, index in enumerate(agent.indexes):
            if index not in spec.indexes:
                continue
            location = spec.indexes[index].location(name=index, environment=clusters[0])
            if "://" not in location:
                findings.append(
                    Finding(
                        ("agents", name, "indexes", at),
                        f"{where}: index '{index}' is a folder of this machine ({location}); "
                        "a pod reads an index from s3:// (lancedb uri) or pgvector",
                    )
                )
    return findings
