"""From the spec as written to full services, one set per environment; pure.

For a service S in environment E the layers are merged in this order (later
wins), by the rules in ``spec.merging``:

    S's template chain (root first) <- S's own keys <- E.defaults <- E.services[S]

Each merged service is validated as a ``ServiceSpec``; a problem is reported at
the document path where the offending value was written (a bad value inherited
from a template is reported at ``templates.NAME...``, on the template's line),
and each problem once, however many services and environments share it.

Each environment is a separate set of replicas behind its own gateway: its
gateway is the top-level one with the environment's keys (usually ``port``)
over it, and no two environments (nor the metrics endpoint) may share a port.
A gateway that other machines reach needs API keys on its services, or an
explicit ``allow_unauthenticated`` (``spec.exposure``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from llmfleet.errors import SpecError
from llmfleet.spec.agent_services import agent_references, agent_services
from llmfleet.spec.costs import CostsSpec
from llmfleet.spec.exposure import open_gateways
from llmfleet.spec.locations import Locations, place_findings
from llmfleet.spec.merging import Layer, Merged, deep_merge, merge_layer, merge_layers
from llmfleet.spec.model import (
    NAME_PATTERN,
    EnvironmentSpec,
    FleetSpec,
    GatewaySpec,
    ResolvedEnvironment,
    ResolvedFleet,
    ServiceSpec,
)
from llmfleet.spec.placement import BackendKind
from llmfleet.spec.problems import DocPath, Finding, error_loc, rewrite_error, unknown_name
from llmfleet.spec.rag_references import rag_references
from llmfleet.spec.templates import Chains, parent_of, template_chains

_DNS_LABEL = "a DNS label: a-z, 0-9 and '-', at most 63 characters, no '-' at either end"


@dataclass(frozen=True)
class Resolution:
    """The resolved fleet, or every finding that prevents it (never both)."""

    fleet: ResolvedFleet | None
    findings: tuple[Finding, ...]


def resolve_fleet(
    spec: FleetSpec, *, locations: Locations | None = None, filename: str = "fleet.yaml"
) -> ResolvedFleet:
    """Resolve templates and environments; raise ``SpecError`` with every problem.

    ``locations`` (from loading the file) gives problems their line and column.
    """
    resolution = collect_resolution(spec)
    if resolution.fleet is None:
        placed = place_findings(resolution.findings, locations or Locations(), filename=filename)
        raise SpecError(placed)
    return resolution.fleet


def collect_resolution(spec: FleetSpec, *, check_ports: bool = True) -> Resolution:
    """Resolve ``spec``, collecting every finding instead of stopping at the first.

    ``check_ports=False`` skips the port-clash check, for a spec whose gateways
    were dropped because they were invalid (the clash would be made up).
    """
    findings = _check_names(spec)
    chains, chain_findings = template_chains(spec.templates)
    findings += chain_findings
    findings += _check_templates(spec, chains)
    bases, incomplete = _merge_bases(spec, chains, findings)
    services = {
        env_name: _resolve_services(
            env_name, env, spec=spec, bases=bases, incomplete=incomplete, findings=findings
        )
        for env_name, env in spec.environments.items()
    }
    for env_name, env_services in services.items():
        env_services.update(agent_services(spec, env_name))
    if check_ports:
        findings += _port_clashes(spec)
    findings += _namespace_clashes(spec)
    findings += rag_references(spec)
    findings += agent_references(spec)
    gateways = {name: gateway_of(spec, env) for name, env in spec.environments.items()}
    exposures = open_gateways(spec, gateways=gateways, services=services)
    findings += [Finding(e.path, e.refusal()) for e in exposures if not e.allowed]
    costs = {name: _resolve_costs(spec, name, e, findings) for name, e in spec.environments.items()}
    if findings:
        return Resolution(None, tuple(dict.fromkeys(findings)))
    return Resolution(_build_fleet(spec, services, costs), ())


def _resolve_costs(
    spec: FleetSpec, name: str, env: EnvironmentSpec, findings: list[Finding]
) -> CostsSpec:
    """The top-level ``costs:`` with the environment's merged over it (``spec.costs``).

    Only what the top level set is carried, so its defaults stay defaults."""
    if not env.costs:
        return spec.costs
    written = spec.costs.model_dump(mode="json", exclude_unset=True)
    try:
        return CostsSpec.model_validate(deep_merge(written, env.costs))
    except PydanticValidationError as exc:
        for error in exc.errors(include_url=False):
            message = rewrite_error(error, model=CostsSpec)
            findings.append(Finding(("environments", name, "costs", *error["loc"]), message))
        return spec.costs


def _build_fleet(
    spec: FleetSpec,
    services: Mapping[str, dict[str, ServiceSpec]],
    costs: Mapping[str, CostsSpec],
) -> ResolvedFleet:
    environments = {
        name: ResolvedEnvironment(
            name=name,
            gateway=gateway_of(spec, env),
            services=services[name],
            backend=env.backend,
            observability=spec.observability,
            costs=costs[name],
        )
        for name, env in spec.environments.items()
    }
    return ResolvedFleet(name=spec.name, state=spec.state, environments=environments)


def gateway_of(spec: FleetSpec, env: EnvironmentSpec) -> GatewaySpec:
    """The top-level gateway with the keys the environment sets over it."""
    if env.gateway is None:
        return spec.gateway
    return spec.gateway.model_copy(update=env.gateway.model_dump(exclude_unset=True))


def _check_names(spec: FleetSpec) -> list[Finding]:
    findings = [
        Finding(("services", name), f"service name '{name}' must be {_DNS_LABEL}")
        for name in spec.services
        if not re.fullmatch(NAME_PATTERN, name)
    ]
    findings += [
        Finding(("environments", name), f"environment name '{name}' must be {_DNS_LABEL}")
        for name in spec.environments
        if not re.fullmatch(NAME_PATTERN, name)
    ]
    if not spec.environments:
        message = "needs at least one environment (leave it out for production and staging)"
        findings.append(Finding(("environments",), message))
    return findings


def _check_templates(spec: FleetSpec, chains: Chains) -> list[Finding]:
    """Check each template over its chain, so even an unused one has its mistakes reported.

    Required fields are not asked of a template (services may set them); the
    same mistakes found again through services are reported once.
    """
    findings: list[Finding] = []
    for name, chain in chains.items():
        layers = [(spec.templates[t], ("templates", t)) for t in chain]
        merged = merge_layers(layers, home=("templates", name))
        _validate_service(merged, findings, complete=False)
    return findings


def _merge_bases(
    spec: FleetSpec, chains: Chains, findings: list[Finding]
) -> tuple[dict[str, Merged], set[str]]:
    """Each service merged over its template chain, and the services whose chain is broken.

    A service with a broken chain is merged alone, so its own mistakes are still
    found; what it would have inherited is unknown, so nothing is required of it.
    """
    bases, incomplete = {}, set()
    for name, body in spec.services.items():
        layers = _service_layers(name, body, spec=spec, chains=chains, findings=findings)
        if layers is None:
            layers = [(body, ("services", name))]
            incomplete.add(name)
        bases[name] = merge_layers(layers, home=("services", name))
    return bases, incomplete


def _service_layers(
    name: str,
    body: Mapping[str, Any],
    *,
    spec: FleetSpec,
    chains: Chains,
    findings: list[Finding],
) -> list[Layer] | None:
    problem, parent = parent_of(body, spec.templates, at=("services", name, "extends"))
    if problem is not None:
        findings.append(problem)
        return None
    if parent is not None and parent not in chains:
        return None  # the template's own chain is broken, reported there
    chain = chains[parent] if parent is not None else ()
    layers: list[Layer] = [(spec.templates[t], ("templates", t)) for t in chain]
    layers.append((body, ("services", name)))
    return layers


def _resolve_services(
    env_name: str,
    env: EnvironmentSpec,
    *,
    spec: FleetSpec,
    bases: Mapping[str, Merged],
    incomplete: set[str],
    findings: list[Finding],
) -> dict[str, ServiceSpec]:
    at: DocPath = ("environments", env_name)
    findings += _check_overrides(env, spec=spec, at=at)
    services = {}
    for name, base in bases.items():
        merged = base.copy()
        merge_layer(merged, env.defaults, origin=(*at, "defaults"))
        merge_layer(merged, env.services.get(name, {}), origin=(*at, "services", name))
        service = _validate_service(merged, findings, complete=name not in incomplete)
        if service is not None:
            services[name] = service
    return services


def _check_overrides(env: EnvironmentSpec, *, spec: FleetSpec, at: DocPath) -> list[Finding]:
    """Overrides must name existing services and cannot change `extends`."""
    findings = []
    for name in env.services:
        if name not in spec.services:
            message = unknown_name("service", name, spec.services)
            findings.append(Finding((*at, "services", name), message))
    overrides = [((*at, "defaults"), env.defaults)]
    overrides += [((*at, "services", name), body) for name, body in env.services.items()]
    findings += [
        Finding((*path, "extends"), "cannot be set in an environment; set it on the service")
        for path, body in overrides
        if "extends" in body
    ]
    return findings


def _validate_service(
    merged: Merged, findings: list[Finding], *, complete: bool = True
) -> ServiceSpec | None:
    """Validate a merged service; ``complete=False`` asks nothing to be set (a partial one)."""
    try:
        return ServiceSpec.model_validate(merged.data)
    except PydanticValidationError as exc:
        for error in exc.errors(include_url=False):
            if complete or error["type"] != "missing":
                message = rewrite_error(error, model=ServiceSpec, extra_names=("extends",))
                findings.append(Finding(merged.origin_of(error_loc(error)), message))
        return None


def _namespace_clashes(spec: FleetSpec) -> list[Finding]:
    """Two environments in one namespace of one cluster would own each other's objects.

    Only namespaces written in the spec are compared; the default one is made of the
    environment's name, so it is never shared."""
    findings = []
    owners: dict[tuple[str | None, str], str] = {}
    for name, env in spec.environments.items():
        backend = env.backend
        if backend.kind is not BackendKind.KUBERNETES or backend.namespace is None:
            continue
        where = (backend.context, backend.namespace)
        if where in owners:
            message = (
                f"namespace '{backend.namespace}' of this cluster is already used by "
                f"environment '{owners[where]}'; each environment needs its own namespace"
            )
            findings.append(Finding(("environments", name, "backend", "namespace"), message))
        owners.setdefault(where, name)
    return findings


def _port_clashes(spec: FleetSpec) -> list[Finding]:
    findings = []
    owners: dict[int, str] = {}
    findings += _gateway_port_clashes(spec, owners)
    metrics = spec.observability.metrics_port
    if metrics is not None and metrics in owners:
        findings.append(_metrics_clash(spec, metrics, owners[metrics]))
    return findings


def _metrics_clash(spec: FleetSpec, port: int, environment: str) -> Finding:
    """Placed where the user wrote the port that collides: the metrics port, or the gateway's."""
    if "metrics_port" in spec.observability.model_fields_set:
        message = (
            f"port {port} is also the gateway port of environment '{environment}'; "
            "the metrics endpoint needs a port of its own"
        )
        return Finding(("observability", "metrics_port"), message)
    override = spec.environments[environment].gateway
    written = override is not None and "port" in override.model_fields_set
    at = ("environments", environment, "gateway", "port") if written else ("gateway", "port")
    message = (
        f"port {port} is also the default port of the metrics endpoint; choose another, "
        "or set observability.metrics_port"
    )
    return Finding(at, message)


def _gateway_port_clashes(spec: FleetSpec, owners: dict[int, str]) -> list[Finding]:
    """Two environments on one port of this machine; ``owners`` is filled with each port's
    environment. A cluster environment's port is its gateway Service's, in a namespace of
    its own: it takes no port here."""
    findings = []
    for name, env in spec.environments.items():
        if env.backend.kind is BackendKind.KUBERNETES:
            continue
        port = gateway_of(spec, env).port
        if port not in owners:
            owners[port] = name
        elif "environments" in spec.model_fields_set:
            message = (
                f"port {port} is already the gateway port of environment '{owners[port]}'; "
                "each environment needs its own port"
            )
            findings.append(Finding(("environments", name, "gateway", "port"), message))
        else:
            message = (
                f"port {port} is also the default gateway port of the '{name}' environment; "
                "choose another port, or declare `environments:` with a port for each"
            )
            findings.append(Finding(("gateway", "port"), message))
    return findings
