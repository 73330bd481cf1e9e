"""Where an environment runs and how its replicas are rolled; pure.

``environments.E.backend`` chooses the machine (``local``, the default) or a
Kubernetes cluster (a kubeconfig context and a namespace). A service's
``rollout`` says how a changed replica is replaced - a new one first
(``surge``: needs a spare GPU) or an old one down first (``replace``: a moment
with one replica less) - and how long a replica may load its model
(``startup_s``) before it counts as failed. ``model_volume`` says where the
weights are put on a cluster. None of these change what a replica runs, so
none is part of its runtime hash.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
DEFAULT_STARTUP_S = 600.0
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendKind(StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"


_CLUSTER_KEYS = (
    "context",
    "namespace",
    "gateway_replicas",
    "image",
    "gpu_products",
    "state_secret",
    "gateway_url",
)


class BackendSpec(_Frozen):
    """Where an environment's replicas and gateway run."""

    kind: BackendKind = Field(
        default=BackendKind.LOCAL,
        description="local (processes on this machine) or kubernetes (a cluster)",
    )
    context: str | None = Field(
        default=None,
        min_length=1,
        description="kubeconfig context; left out: the current one, or the pod's own "
        "service account when llmfleet runs in the cluster",
    )
    namespace: str | None = Field(
        default=None,
        pattern=NAMESPACE_PATTERN,
        description="left out: FLEET-ENVIRONMENT (cut to 63 characters with a hash)",
    )
    gateway_replicas: int = Field(default=2, ge=1, le=100, description="gateway pods")
    image: str | None = Field(
        default=None,
        min_length=1,
        description="llmfleet's own image (gateway, model fetch); default llmfleet:VERSION",
    )
    gpu_products: dict[str, tuple[LabelValue, ...]] = Field(
        default_factory=dict,
        description="resources.gpu_type -> values of the nodes' nvidia.com/gpu.product label "
        "(`kubectl get nodes -L nvidia.com/gpu.product`), for types llmfleet does not know",
    )
    state_secret: str | None = Field(
        default=None,
        pattern=NAMESPACE_PATTERN,
        description="Secret whose key `url` holds the state URL the gateway reads API keys "
        "from; never written into a manifest",
    )
    gateway_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="where clients outside the cluster reach the gateway (an Ingress or "
        "LoadBalancer address, without /v1); validate runs its suites there. Left out: the "
        "Service's cluster address inside a pod, else the API server's service proxy when "
        "the API is plain http (`kubectl proxy`)",
    )

    @model_validator(mode="before")
    @classmethod
    def _cluster_keys_need_kubernetes(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("kind", "local") == "local":
            # A saved revision holds the defaults as dumped; only a value a user chose counts.
            fields = cls.model_fields
            written = [
                key
                for key in _CLUSTER_KEYS
                if value.get(key) is not None
                and value[key] != fields[key].get_default(call_default_factory=True)
            ]
            if written:
                raise ValueError(
                    f"{', '.join(written)} only mean something on a cluster; "
                    "set kind: kubernetes, or remove them"
                )
        return value


class RolloutStrategy(StrEnum):
    SURGE = "surge"
    REPLACE = "replace"


class Rollout(_Frozen):
    """How replicas are replaced when what they run changes."""

    strategy: RolloutStrategy = Field(
        default=RolloutStrategy.SURGE,
        description="surge: start a new replica before stopping an old one (needs room for "
        "one more: a spare GPU); replace: stop an old one first (one replica less meanwhile)",
    )
    max_surge: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="replicas started above the count at once; default 1 (surge), 0 (replace)",
    )
    max_unavailable: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="replicas down at once; default 0 (surge), 1 (replace)",
    )
    startup_s: float = Field(
        default=DEFAULT_STARTUP_S,
        gt=0,
        le=86400,
        description="how long a replica may take to load its model and answer; a 70B model "
        "takes many minutes. Health checks never kill a replica within it",
    )

    @model_validator(mode="after")
    def _fill_and_check(self) -> Rollout:
        surge = self.strategy is RolloutStrategy.SURGE
        max_surge = self.max_surge if self.max_surge is not None else int(surge)
        unavailable = self.max_unavailable if self.max_unavailable is not None else int(not surge)
        if not surge and max_surge > 0:
            raise ValueError(
                "strategy replace starts no replica before an old one is down: "
                "leave max_surge out (0), or use strategy surge"
            )
        if max_surge == 0 and unavailable == 0:
            raise ValueError(
                "max_surge and max_unavailable cannot both be 0: no replica could ever be "
                "replaced; set max_surge: 1 (surge) or max_unavailable: 1 (replace)"
            )
        object.__setattr__(self, "max_surge", max_surge)  # frozen: filled while validating
        object.__setattr__(self, "max_unavailable", unavailable)
        return self


class ModelVolume(_Frozen):
    """Where a cluster replica's weights are put before the engine starts."""

    claim: str | None = Field(
        default=None,
        pattern=NAMESPACE_PATTERN,
        description="an existing PersistentVolumeClaim (ReadWriteMany when replicas share "
        "it): fetched once, kept across restarts; left out: an emptyDir per pod",
    )
    size: str | None = Field(
        default=None,
        pattern=SIZE_PATTERN,
        description="size limit of the emptyDir (e.g. 20Gi); left out: no limit",
    )
