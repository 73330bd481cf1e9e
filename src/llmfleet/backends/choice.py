"""Which ``Backend`` an environment runs on: its spec's ``backend.kind`` decides.

The CLI asks here once per environment; nothing above the backends names a
concrete one. The Kubernetes backend (and lightkube under it) is imported only
for an environment that runs on a cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from llmfleet.backends.base import Backend
from llmfleet.spec.placement import BackendKind, BackendSpec

if TYPE_CHECKING:
    from llmfleet.backends.local.client import LocalBackend
    from llmfleet.spec.model import ResolvedEnvironment

API_SERVER_VARIABLE = "LLMFLEET_KUBERNETES_API"
"""A plain http:// API URL (``kubectl proxy``) used instead of the kubeconfig."""


def backend_for(
    spec: BackendSpec | None,
    *,
    environment: ResolvedEnvironment | None,
    fleet: str,
    local: Callable[[], LocalBackend],
) -> Backend:
    """The backend for an environment of ``fleet``; ``local`` makes the agent's client
    (built only when the environment runs locally)."""
    if spec is None or environment is None or spec.kind is BackendKind.LOCAL:
        from llmfleet.backends.local.fleet import LocalFleet

        return LocalFleet(local())
    from llmfleet.backends.kubernetes.fleet import KubernetesFleet
    from llmfleet.backends.kubernetes.names import namespace_of

    return KubernetesFleet(
        fleet=fleet,
        environment=environment.name,
        spec=spec,
        namespace=namespace_of(fleet, environment.name, spec),
        server=os.environ.get(API_SERVER_VARIABLE) or None,
    )
