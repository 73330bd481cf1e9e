"""What one render needs besides the spec: where, which images, which APIs; pure."""

from __future__ import annotations

from dataclasses import dataclass

from llmfleet import __version__
from llmfleet.backends.kubernetes.labels import Owner
from llmfleet.backends.kubernetes.names import namespace_of
from llmfleet.spec.model import ResolvedEnvironment

POD_MONITOR_API = "monitoring.coreos.com/v1/PodMonitor"
INFERENCE_POOL_API = "inference.networking.k8s.io/v1/InferencePool"
OPTIONAL_APIS = frozenset({POD_MONITOR_API, INFERENCE_POOL_API})
"""Objects rendered only when the cluster serves their API (``GROUP/VERSION/KIND``)."""
DEFAULT_IMAGE = "llmfleet"
MODELS_MOUNT = "/models"
NON_ROOT_ID = 65532
"""The id pods run as: not root, and not an id that owns anything on a node."""


@dataclass(frozen=True)
class RenderContext:
    """The environment to render and the choices a render cannot read from the spec.

    ``apis`` names the optional APIs the cluster serves (API discovery finds them;
    ``llmfleet render --api`` names them by hand); ``revision`` labels the objects
    with the state revision they belong to.
    """

    fleet: str
    environment: ResolvedEnvironment
    apis: frozenset[str] = frozenset()
    revision: int | None = None

    @property
    def owner(self) -> Owner:
        return Owner(self.fleet, self.environment.name, self.revision)

    @property
    def namespace(self) -> str:
        return namespace_of(self.fleet, self.environment.name, self.environment.backend)

    @property
    def image(self) -> str:
        """llmfleet's own image: the gateway and the model fetch run from it."""
        return self.environment.backend.image or f"{DEFAULT_IMAGE}:{__version__}"
