"""Labels and selectors; pure.

A Deployment's selector cannot change after it is created, so selectors hold
only what never changes for an object: fleet, environment, component and
service. Versions and revisions go in the other labels, never in a selector.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmfleet import __version__

FLEET = "llmfleet.io/fleet"
ENVIRONMENT = "llmfleet.io/environment"
SERVICE = "llmfleet.io/service"
REVISION = "llmfleet.io/revision"
COMPONENT = "app.kubernetes.io/component"
MANAGED_BY = "app.kubernetes.io/managed-by"
ENGINE = "engine"
GATEWAY = "gateway"
AGENT = "agent"
"""An agent's pods (``agents:``): reached like engines, but the user's code."""


@dataclass(frozen=True)
class Owner:
    """The fleet and environment every object of one render belongs to."""

    fleet: str
    environment: str
    revision: int | None = None

    def selector(self, component: str, service: str | None = None) -> dict[str, str]:
        """The immutable labels that pick one component's pods (one service's engines)."""
        labels = {FLEET: self.fleet, ENVIRONMENT: self.environment, COMPONENT: component}
        if service is not None:
            labels[SERVICE] = service
        return labels

    def labels(self, component: str, service: str | None = None) -> dict[str, str]:
        """Everything an object carries: its selector, the recommended app labels, revision."""
        labels = {
            **self.selector(component, service),
            "app.kubernetes.io/name": service or "llmfleet-gateway",
            "app.kubernetes.io/instance": f"{self.fleet}-{self.environment}"[:63].rstrip("-"),
            "app.kubernetes.io/part-of": "llmfleet",
            "app.kubernetes.io/version": __version__,
            MANAGED_BY: "llmfleet",
        }
        if self.revision is not None:
            labels[REVISION] = str(self.revision)
        return labels

    def pod_labels(self, component: str, service: str | None = None) -> dict[str, str]:
        """A pod template's labels: no version or revision, so an llmfleet upgrade or a
        new revision with the same containers restarts no pod."""
        return {
            **self.selector(component, service),
            "app.kubernetes.io/part-of": "llmfleet",
            MANAGED_BY: "llmfleet",
        }

    def metadata(
        self, name: str, namespace: str, component: str, service: str | None = None
    ) -> dict[str, object]:
        return {"name": name, "namespace": namespace, "labels": self.labels(component, service)}
