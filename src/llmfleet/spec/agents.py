"""``agents:``: programs that call the fleet's models, run and exposed like services; pure.

An agent is code: an ASGI app (``entrypoint: package.module:app``, served by
uvicorn in a process of its own) or any ``command:`` that serves HTTP on the
port it is given. llmfleet runs it as replicas of a service whose engine kind
is ``agent`` (``spec.agent_services`` builds that service), so plan, apply,
status, logs, destroy and the gateway treat it as they treat a model: a client
names the agent as its ``model``.

What it may reach is declared here: the services it calls (``models:``, the
scope of the API key it is given) and the indexes it reads (``indexes:``).
Secrets are named, never written: ``secrets: [SEARCH_TOKEN]`` passes the value
that variable has in the environment of whoever runs ``apply``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmfleet.spec.resources import AgentResources
from llmfleet.spec.validation import ValidationSpec

ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NO_NUL = r"^[^\x00]*$"
PORT_PLACEHOLDER = "{port}"
RESERVED_ENV = frozenset(
    {"OPENAI_BASE_URL", "OPENAI_API_KEY", "LLMFLEET_AGENT", "LLMFLEET_ENVIRONMENT"}
)
"""Variables llmfleet sets for every agent; a spec may not set them (env or secrets)."""
_INDEX_ENV_PREFIX = "LLMFLEET_INDEX_"
AGENT_KEY_PREFIX = "agent "


class _Frozen(BaseModel):
    # spec.model's Frozen, repeated: spec.model imports this module
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class AgentAuth(_Frozen):
    required: bool = Field(default=False, description="clients need an API key to call the agent")


class EgressRule(_Frozen):
    """Addresses an agent may reach on a kubernetes environment, beyond its gateway and DNS."""

    cidr: str = Field(description="an IPv4 or IPv6 network, e.g. 10.20.0.0/16")
    ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(
        default=(), description="TCP ports; none: every port"
    )

    @field_validator("cidr")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            if "host bits" in str(exc):
                raise ValueError(f"{value} has host bits set") from exc
            raise ValueError(f"{value!r} is not an IP network (such as 10.20.0.0/16)") from exc


class AgentProgram(_Frozen):
    """What an agent's replicas run: a change replaces them (and their keys)."""

    entrypoint: str | None = Field(
        default=None,
        pattern=ENTRYPOINT_PATTERN,
        description="package.module:app, an ASGI app served by uvicorn on 127.0.0.1",
    )
    command: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="argv of a program serving HTTP on 127.0.0.1; '{port}' is replaced by its port",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        pattern=r"^[^\s\x00]+$",
        description="the container image it runs in on a kubernetes environment (needed "
        "there): any image for command:, one with llmfleet and the entrypoint's package "
        "installed for entrypoint:; unused on the local backend",
    )
    models: tuple[str, ...] = Field(
        min_length=1,
        description="the services (or agents) it may call; its API key reaches only these",
    )
    indexes: tuple[str, ...] = Field(
        default=(),
        description="indexes it reads; each one's location is in LLMFLEET_INDEX_<NAME>",
    )
    env: dict[str, str] = Field(default_factory=dict, description="environment variables")
    secrets: tuple[str, ...] = Field(
        default=(),
        description="names of environment variables of whoever runs apply, passed on to the "
        "agent under the same name; their values are never written to the spec or state",
    )
    resources: AgentResources = Field(
        default_factory=AgentResources,
        description="what one replica needs: requested on a kubernetes environment (memory "
        "is also its limit) and priced by `llmfleet costs`",
    )
    health_path: str = Field(
        default="/health", pattern=r"^/[^\s\x00]*$", description="answers 200 when ready"
    )
    egress: tuple[EgressRule, ...] | None = Field(
        default=None,
        description="on a kubernetes environment, what its pods may reach besides its "
        "gateway and the cluster's DNS (a NetworkPolicy); unset: anything. Not enforced on "
        "the local backend",
    )
    working_dir: str | None = Field(
        default=None, min_length=1, description="its working directory, relative to the spec file"
    )
    python_path: tuple[str, ...] = Field(
        default=(),
        description="folders (relative to the spec file) put before PYTHONPATH, where the "
        "entrypoint's package is",
    )

    @model_validator(mode="after")
    def _one_program(self) -> AgentProgram:
        if (self.entrypoint is None) == (self.command is None):
            raise ValueError("give exactly one of entrypoint (package.module:app) or command")
        return self

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            _check_variable(name)
            if not re.match(_NO_NUL, item):
                raise ValueError(f"env.{name}: a NUL cannot be passed to a program")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            _check_variable(name)
        return value

    @field_validator("command", "python_path")
    @classmethod
    def _no_nul(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and any("\x00" in item for item in value):
            raise ValueError("a NUL cannot be passed to a program")
        return value


class AgentSpec(AgentProgram):
    """One agent as written under ``agents:``: its program, and how many replicas run
    it, how the gateway admits requests to it and how it is validated, none of which
    replaces a replica (``agent_services`` puts them on the agent's service)."""

    replicas: int = Field(default=1, ge=1, le=100)
    concurrency: int = Field(
        default=16, ge=1, le=4096, description="requests in flight per replica"
    )
    auth: AgentAuth = Field(default_factory=AgentAuth)
    validation: ValidationSpec | None = Field(
        default=None,
        description="its golden tasks (quality: a suite whose checks may also name the "
        "documents it must retrieve and the tools it must call) and gate, as for a service",
    )


class AgentRuntime(AgentProgram):
    """An agent's program as one environment runs it: ``index_uris`` are its indexes'
    locations there (still relative to the spec's folder). Carried on the agent's
    service, where its runtime hash covers it."""

    index_uris: dict[str, str] = Field(default_factory=dict)


def agent_key_name(environment: str, replica_id: str) -> str:
    """The name of an agent replica's API key (its id names the agent too)."""
    return f"{AGENT_KEY_PREFIX}{environment}/{replica_id}"


def agent_of_key(key_name: str) -> str | None:
    """The agent an API key was made for (``agent_key_name``), None for other keys; pure."""
    if not key_name.startswith(AGENT_KEY_PREFIX) or "/" not in key_name:
        return None
    environment, replica_id = key_name[len(AGENT_KEY_PREFIX) :].split("/", 1)
    parts = replica_id.removeprefix(environment + "-").rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[0] else None


def index_variable(name: str) -> str:
    """``docs-v2`` -> ``LLMFLEET_INDEX_DOCS_V2``: where an agent finds an index."""
    return _INDEX_ENV_PREFIX + name.upper().replace("-", "_")


def _check_variable(name: str) -> None:
    if not re.match(_ENV_NAME, name):
        raise ValueError(f"{name!r} is not an environment variable name (A-Z, 0-9, _)")
    if name in RESERVED_ENV or name.startswith(_INDEX_ENV_PREFIX):
        raise ValueError(f"{name} is set by llmfleet for every agent; use another name")
