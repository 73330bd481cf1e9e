"""What "good enough" means for a service: its suites and its gate; pure spec models.

A service's ``validation:`` block names a quality suite (a YAML file of cases,
read by ``validate.suites``), describes a speed suite inline, and sets the gate's
thresholds, absolute and relative to what production runs now. Kept apart from
``spec.model`` so the release feature owns its own schema; ``ServiceSpec`` only
holds the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

RETRIEVAL_DROP = 0.0


class _Frozen(BaseModel):
    # The same rules as spec.model.Frozen, repeated to avoid an import cycle.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpeedSuiteSpec(_Frozen):
    """Load for the speed suite: closed loop at each concurrency, open loop at a rate."""

    concurrency: tuple[int, ...] = Field(
        default=(1, 4), min_length=1, description="closed-loop levels (requests in flight)"
    )
    rate: float | None = Field(
        default=None, gt=0, description="open-loop Poisson arrivals per second (optional)"
    )
    duration_s: float = Field(default=4.0, gt=0, description="load time per level and side")
    rounds: int = Field(
        default=2, ge=1, description="production/candidate alternations (noise hits both)"
    )
    warmup_s: float = Field(default=0.5, ge=0, description="unmeasured load on each side first")
    max_tokens: int = Field(default=32, ge=1)
    prompt: str = Field(default="Write a short story about a lighthouse keeper.", min_length=1)


class GateSpec(_Frozen):
    """Thresholds; unset ones are not checked. Ratios compare with production's run."""

    min_quality_pass_rate: float = Field(default=1.0, ge=0, description="share of cases passing")
    min_agreement: float | None = Field(
        default=None, ge=0, description="share of answers matching production at temperature 0"
    )
    agreement_similarity: float = Field(
        default=0.9, ge=0, description="answers at least this similar count as matching"
    )
    max_ttft_p95_ratio: float | None = Field(default=1.1, ge=0)
    max_e2e_p95_ratio: float | None = Field(default=None, ge=0)
    min_throughput_ratio: float | None = Field(default=0.95, ge=0)
    max_error_rate: float = Field(default=0.0, ge=0)
    max_ttft_p95_s: float | None = Field(default=None, ge=0, description="absolute SLO")
    max_itl_p95_s: float | None = Field(default=None, ge=0, description="absolute SLO")
    max_e2e_p95_s: float | None = Field(default=None, ge=0, description="absolute SLO")
    min_throughput_tps: float | None = Field(default=None, ge=0, description="absolute SLO")
    min_samples: int = Field(
        default=20,
        ge=1,
        description="answered requests per level and side before speed is judged; with fewer "
        "the speed checks are inconclusive (run longer: speed.duration_s)",
    )
    confidence: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="of the bootstrap intervals the speed checks judge on: a check passes or "
        "fails only when its whole interval does, and is inconclusive otherwise",
    )
    max_retrieval_drop: float | None = Field(
        default=RETRIEVAL_DROP,
        ge=0,
        description="agents: how far the candidate's share of retrieved: checks met may fall "
        "below production's in the same run (0: never lower; null: not compared)",
    )
    max_cost_per_mtok_ratio: float | None = Field(
        default=None,
        ge=0,
        description="the candidate's price per million output tokens over production's, "
        "each side's replicas at its environment's prices and measured throughput (costs:)",
    )

    @model_serializer(mode="wrap")
    def _without_default_retrieval(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A gate's dump (candidate hashes, recorded revisions, manifests) stays what it
        was before agents were validated, unless the retrieval limit was changed."""
        body = handler(self)
        if isinstance(body, dict) and body.get("max_retrieval_drop") == RETRIEVAL_DROP:
            body.pop("max_retrieval_drop", None)
        return body


class ValidationSpec(_Frozen):
    """The service's suites and gate, as ``llmfleet validate`` runs them."""

    quality: str | None = Field(
        default=None, description="quality suite YAML, relative to the spec file"
    )
    speed: SpeedSuiteSpec | None = Field(default_factory=SpeedSuiteSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    similarity: str | None = Field(
        default=None,
        min_length=1,
        description="a service of the fleet that serves all-MiniLM-L6-v2 on /v1/embeddings: "
        "similar_to checks and agreement use it (at production's gateway) instead of loading "
        "the reference model in the validating process",
    )

    @model_serializer(mode="wrap")
    def _without_unset_similarity(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Dumps as before the field existed when it is not set (see the gate's)."""
        body = handler(self)
        if isinstance(body, dict) and body.get("similarity") is None:
            body.pop("similarity", None)
        return body


def impossible_thresholds(gate: GateSpec) -> list[str]:
    """Thresholds that no candidate can ever meet, as warnings; pure."""
    warnings = []
    if gate.min_quality_pass_rate > 1:
        warnings.append(f"min_quality_pass_rate {gate.min_quality_pass_rate} is above 1")
    if gate.min_agreement is not None and gate.min_agreement > 1:
        warnings.append(f"min_agreement {gate.min_agreement} is above 1")
    if gate.agreement_similarity > 1:
        warnings.append(f"agreement_similarity {gate.agreement_similarity} is above 1")
    for name in (
        "max_ttft_p95_ratio",
        "max_e2e_p95_ratio",
        "max_ttft_p95_s",
        "max_itl_p95_s",
        "max_e2e_p95_s",
    ):
        if getattr(gate, name) == 0:
            warnings.append(f"{name} is 0: no answer is ever that fast")
    return [f"gate.{w}; the gate can never pass" for w in warnings]
