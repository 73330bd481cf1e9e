"""The engines' API keys in a cluster: one Secret per service, made by apply when missing.

A key is made here (``secrets.token_urlsafe``) and goes straight into the Secret:
never into a manifest, the state, a plan or a log. An existing Secret is kept as
it is, so engines and gateways already running keep agreeing on it; deleting the
environment deletes the Secrets (they carry its labels).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from typing import Any

from llmfleet.backends.kubernetes.client import status_of, translated
from llmfleet.backends.kubernetes.labels import ENGINE, Owner
from llmfleet.backends.kubernetes.names import KEY_FIELD, engine_key_secret
from llmfleet.engines.base import Progress


def missing_keys(client: Any, namespace: str, services: Iterable[str]) -> list[str]:
    """The services of ``services`` whose engine key Secret does not exist yet."""
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Secret

    missing = []
    for service in services:
        name = engine_key_secret(service)
        with translated(f"reading Secret/{name}"):
            try:
                client.get(Secret, name, namespace=namespace)
            except ApiError as exc:
                if status_of(exc) != 404:
                    raise
                missing.append(service)
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
