"""API keys in a cluster: one Secret per model service (its engine key) and one per agent
(its scoped gateway key), made by apply when missing.

A key is made here (``secrets.token_urlsafe``) and goes straight into the Secret:
never into a manifest, the state, a plan or a log. An existing Secret is kept as
it is, so engines and gateways already running keep agreeing on it; deleting the
environment deletes the Secrets (they carry its labels).

An agent's key is one of llmfleet's API keys, scoped to the agent's ``models:``:
its hash goes into the state store (the cluster's gateway checks keys there: its
``LLMFLEET_STATE_URL`` comes from ``backend.state_secret``), the key itself only
into the agent's Secret. Its Secret is named after the agent's runtime
(``agents.agent_secret``), so replacing an agent makes a new one, and the old one
is deleted and its key revoked once the new pods are out.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from llmfleet.apply.agents import revoke_stale_agent_keys
from llmfleet.backends.kubernetes.agents import (
    KEY_NAME_ANNOTATION,
    KEY_VARIABLE,
    agent_secret,
    secret_variables,
)
from llmfleet.backends.kubernetes.client import status_of, translated
from llmfleet.backends.kubernetes.labels import AGENT, COMPONENT, ENGINE, Owner
from llmfleet.backends.kubernetes.names import KEY_FIELD, engine_key_secret
from llmfleet.backends.kubernetes.planning import prune_selector
from llmfleet.engines.base import Progress
from llmfleet.errors import FleetError
from llmfleet.spec.agents import AgentRuntime, agent_key_name
from llmfleet.state.store import StateStore


def missing_keys(client: Any, namespace: str, services: Iterable[str]) -> list[str]:
    """The services of ``services`` whose engine key Secret does not exist yet."""
    names = {engine_key_secret(service): service for service in services}
    return [names[name] for name in absent_secrets(client, namespace, names)]


def absent_secrets(client: Any, namespace: str, names: Iterable[str]) -> list[str]:
    """The Secrets of ``names`` that do not exist in ``namespace``, in order."""
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Secret

    missing = []
    for name in names:
        with translated(f"reading Secret/{name}"):
            try:
                client.get(Secret, name, namespace=namespace)
            except ApiError as exc:
                if status_of(exc) != 404:
                    raise
                missing.append(name)
    return missing


def make_missing_keys(
    client: Any, owner: Owner, namespace: str, services: Iterable[str], progress: Progress
) -> None:
    """An engine key Secret for each of ``services`` that has none."""
    from lightkube.resources.core_v1 import Secret

    for service in missing_keys(client, namespace, services):
        name = engine_key_secret(service)
        key = base64.b64encode(secrets.token_urlsafe(32).encode()).decode()
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": owner.metadata(name, namespace, ENGINE, service),
            "data": {KEY_FIELD: key},
        }  # fmt: skip
        with translated(f"making Secret/{name}"):
            client.apply(Secret.from_dict(body))
        progress(f"+ Secret/{name}: a new engine API key")


def missing_agent_secrets(client: Any, namespace: str, secrets_: Iterable[str]) -> list[str]:
    """The agent Secrets of ``secrets_`` (``render.agent_secrets``) not made yet."""
    return absent_secrets(client, namespace, secrets_)


def make_agent_secrets(
    client: Any,
    store: StateStore,
    owner: Owner,
    namespace: str,
    agents: Mapping[str, AgentRuntime],
    progress: Progress,
    user_env: Mapping[str, str],
) -> None:
    """The Secret of each agent of ``agents`` whose runtime has none yet: a new API key,
    scoped to the agent's ``models:`` and registered (hashed) in ``store``, where the
    cluster's gateway checks keys, beside the values of its ``secrets:`` and of its
    pgvector indexes' URL variables, read from ``user_env`` (every one is checked
    before anything is made). An existing Secret is kept: its pods keep their key."""
    from lightkube.resources.core_v1 import Secret

    wanted = {agent_secret(name, agent): (name, agent) for name, agent in sorted(agents.items())}
    missing = missing_agent_secrets(client, namespace, wanted)
    values = {secret: _agent_values(*wanted[secret], user_env) for secret in missing}
    for secret in missing:
        name, agent = wanted[secret]
        key_name = agent_key_name(owner.environment, f"{owner.environment}-{name}-{secret[-8:]}"
                                  f"-{secrets.token_hex(3)}")  # fmt: skip
        _, key = store.create_key(name=key_name, services=agent.models, rpm=None, tpm=None)
        data = {KEY_VARIABLE: key, **values[secret]}
        metadata = owner.metadata(secret, namespace, AGENT, name)
        metadata["annotations"] = {KEY_NAME_ANNOTATION: key_name}
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }  # fmt: skip
        with translated(f"making Secret/{secret}"):
            client.apply(Secret.from_dict(body))
        progress(f"+ Secret/{secret}: a new API key for agent {name}, scoped to "
                 f"{', '.join(agent.models)}")  # fmt: skip


def retire_agent_secrets(
    client: Any, store: StateStore, owner: Owner, namespace: str, keep: Collection[str],
    progress: Progress,
) -> None:  # fmt: skip
    """Delete the agent Secrets not in ``keep`` (their agent was replaced or removed; run
    once the new pods are out), then revoke every agent key of the environment that no
    kept Secret holds: a replaced agent's old key stops working."""
    from lightkube.resources.core_v1 import Secret

    labels = {**prune_selector(owner), COMPONENT: AGENT}
    with translated(f"listing the agent Secrets of namespace {namespace}"):
        found = list(client.list(Secret, namespace=namespace, labels=labels))
    live: set[str] = set()
    prefix = agent_key_name(owner.environment, "")
    for item in found:
        name = item.metadata.name
        key_name = (item.metadata.annotations or {}).get(KEY_NAME_ANNOTATION, "")
        if name in keep:
            live.add(key_name[len(prefix) :])
            continue
        with translated(f"deleting Secret/{name}"):
            client.delete(Secret, name, namespace=namespace)
        progress(f"- Secret/{name}: its agent was replaced or removed")
    revoked = revoke_stale_agent_keys(store, environment=owner.environment, live=live)
    if revoked:
        progress(f"revoked {revoked} API key(s) of replaced or removed agents")


def _agent_values(name: str, agent: AgentRuntime, user_env: Mapping[str, str]) -> dict[str, str]:
    """What the agent reads from its Secret besides its key, from whoever runs apply."""
    wanted = [v for v in secret_variables(agent) if v != KEY_VARIABLE]
    missing = [v for v in wanted if not user_env.get(v)]
    if missing:
        raise FleetError(
            f"agents.{name}: {', '.join(missing)} not set in your environment; nothing was applied",
            hint=f"export {missing[0]}=... in the shell that runs apply (its value goes into "
            "the agent's Secret, never into a manifest or the state)",
        )
    return {variable: user_env[variable] for variable in wanted}
