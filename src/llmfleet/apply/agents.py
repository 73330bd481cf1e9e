"""What an agent replica is given when apply starts it, and its keys taken back after.

Each agent replica gets an API key of its own, created in the state store
(hashed, as every key) and scoped to exactly the agent's ``models:``; the
secret goes only into the replica's environment (``OPENAI_API_KEY``), beside
``OPENAI_BASE_URL`` (its environment's gateway), the locations of the indexes
it reads and the secrets it names (and the database URL of a pgvector index, in
the variable its ``url_env`` names), read from the environment of whoever runs
apply. A replaced replica is a new replica with a new key, and the keys of
replicas that no longer run are revoked at the end of every apply
(``revoke_stale_agent_keys``): replacing an agent rotates its key.

When the spec sends traces somewhere (``observability.otlp_endpoint``), the agent
is told the same collector in OpenTelemetry's standard variables
(``observe.process_env``), so an instrumented agent's spans land in the trace of
the gateway request that reached it.

The secret is never returned to anything that records or prints: not the
plan, not the state's revision, not a log line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from llmfleet.engines.agent_serve import WORKDIR_ENV
from llmfleet.errors import FleetError
from llmfleet.observe.process_env import agent_tracing_env
from llmfleet.spec.agents import AgentRuntime, agent_key_name, index_variable
from llmfleet.spec.model import GatewaySpec, ServiceSpec
from llmfleet.spec.observability import Observability
from llmfleet.spec.rag import pgvector_url_env
from llmfleet.state.store import StateStore

_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def gateway_base_url(gateway: GatewaySpec) -> str:
    """The OpenAI base URL of an environment's gateway as seen from this machine."""
    host = _ANY_ADDRESS.get(gateway.host, gateway.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{gateway.port}/v1"


def agent_environment(
    name: str,
    service: ServiceSpec,
    *,
    environment: str,
    gateway: GatewaySpec,
    store: StateStore,
    spec_dir: Path,
    user_env: Mapping[str, str] | None = None,
    observability: Observability | None = None,
) -> Callable[[str], dict[str, str]] | None:
    """The environment of each new replica of ``service``, None for a model service.

    Secrets are read now, before any replica starts, so a missing one stops the apply
    with nothing started; the key is created per replica, when its id is known."""
    agent = service.agent
    if agent is None:
        return None
    shared = {
        "OPENAI_BASE_URL": gateway_base_url(gateway),
        "LLMFLEET_AGENT": name,
        "LLMFLEET_ENVIRONMENT": environment,
        **_secrets(name, agent, os.environ if user_env is None else user_env),
        **_index_urls(name, agent, os.environ if user_env is None else user_env),
        **_places(agent, spec_dir),
        **agent_tracing_env(name, agent.env, observability),
    }

    def for_replica(replica_id: str) -> dict[str, str]:
        _, secret = store.create_key(
            name=agent_key_name(environment, replica_id),
            services=agent.models,
            rpm=None,
            tpm=None,
        )
        return {**shared, "OPENAI_API_KEY": secret}

    return for_replica


def revoke_stale_agent_keys(store: StateStore, *, environment: str, live: Collection[str]) -> int:
    """Revoke the agent keys of ``environment`` whose replica is not in ``live``; the count."""
    prefix = agent_key_name(environment, "")
    stale = [
        key
        for key in store.list_keys()
        if key.revoked_at is None
        and key.name.startswith(prefix)
        and key.name[len(prefix) :] not in live
    ]
    for key in stale:
        store.revoke_key(key.id)
    return len(stale)


def _secrets(name: str, agent: AgentRuntime, user_env: Mapping[str, str]) -> dict[str, str]:
    missing = [variable for variable in agent.secrets if variable not in user_env]
    if missing:
        raise FleetError(
            f"agents.{name}.secrets: {', '.join(missing)} not set in your environment; "
            "nothing was started",
            hint=f"export {missing[0]}=... in the shell that runs apply (its value is passed "
            "to the agent and never written to the spec or state)",
        )
    return {variable: user_env[variable] for variable in agent.secrets}


def _index_urls(name: str, agent: AgentRuntime, user_env: Mapping[str, str]) -> dict[str, str]:
    """The database URL of each pgvector index the agent reads, from the variable its
    ``url_env`` names (a secret, as those of ``secrets:``)."""
    variables = {
        index: variable
        for index, uri in agent.index_uris.items()
        if (variable := pgvector_url_env(uri)) is not None
    }
    missing = {i: v for i, v in variables.items() if not user_env.get(v)}
    if missing:
        index, variable = next(iter(missing.items()))
        raise FleetError(
            f"agents.{name}.indexes: {index} is a pgvector index whose URL is read from "
            f"${variable}, which is not set in your environment; nothing was started",
            hint=f"export {variable}=postgresql://USER:PASSWORD@HOST:PORT/DATABASE in the "
            "shell that runs apply (it is passed to the agent, never written to state)",
        )
    return {variable: user_env[variable] for variable in variables.values()}


def _places(agent: AgentRuntime, spec_dir: Path) -> dict[str, str]:
    """Index locations, working directory and python path, made absolute."""
    places = {
        index_variable(index): uri if "://" in uri else str(_under(spec_dir, uri))
        for index, uri in agent.index_uris.items()
    }
    if agent.working_dir is not None:
        places[WORKDIR_ENV] = str(_under(spec_dir, agent.working_dir))
    if agent.python_path:
        places["PYTHONPATH"] = os.pathsep.join(str(_under(spec_dir, p)) for p in agent.python_path)
    return places


def _under(spec_dir: Path, path: str) -> Path:
    return (spec_dir / path).resolve()
