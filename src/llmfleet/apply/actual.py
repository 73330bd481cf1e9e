"""What actually runs in an environment, read from the backend: what plans diff against."""

from __future__ import annotations

from llmfleet.backends.local.client import LocalBackend
from llmfleet.plan.diff import ActualEnvironment


def actual_environment(backend: LocalBackend, environment: str) -> ActualEnvironment:
    """Replicas, the gateway and the config the runtime holds (empty: no agent running)."""
    if not backend.running():
        return ActualEnvironment()
    config = backend.environment_config(environment)
    gateways = [g for g in backend.gateways() if g.environment == environment]
    return ActualEnvironment(
        replicas=backend.list_replicas(environment),
        services=config.get("services", {}),
        gateway=gateways[0] if gateways else None,
        observability=config.get("observability"),
        costs=config.get("costs"),
    )
