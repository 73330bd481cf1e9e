"""Gateways that other machines can reach while some of their services need no API key; pure.

A gateway on a loopback address serves only this machine. On any other address
(``0.0.0.0``, ``::``, a LAN address, a host name) anyone who reaches the port may
use every service without ``auth.required``: that is refused unless the gateway
says ``allow_unauthenticated: true``, and then ``check`` and ``plan`` warn of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from llmfleet.spec.hosts import is_loopback
from llmfleet.spec.model import FleetSpec, GatewaySpec, ServiceSpec
from llmfleet.spec.problems import DocPath


@dataclass(frozen=True)
class Exposure:
    """One environment's gateway beyond loopback, and its services that need no key."""

    path: DocPath
    """Where the host was written: the environment's gateway, or the top-level one."""
    host: str
    services: tuple[str, ...]
    allowed: bool

    def refusal(self) -> str:
        them = "it" if len(self.services) == 1 else "them"
        return (
            f"{self.host} accepts connections from other machines, but {self._needs_no_key()}; "
            f"set `auth: {{required: true}}` on {them}, or `allow_unauthenticated: true` on "
            f"the gateway if anyone may use {them}"
        )

    def warning(self) -> str:
        return (
            f"{self.host} accepts connections from other machines and {self._needs_no_key()} "
            "(allow_unauthenticated: true)"
        )

    def _needs_no_key(self) -> str:
        if len(self.services) == 1:
            return f"service {self.services[0]} needs no API key"
        return f"services {', '.join(self.services)} need no API key"


def open_gateways(
    spec: FleetSpec,
    *,
    gateways: Mapping[str, GatewaySpec],
    services: Mapping[str, Mapping[str, ServiceSpec]],
) -> list[Exposure]:
    """Each environment whose gateway other machines reach and that serves keyless services."""
    exposures = []
    for name, gateway in gateways.items():
        keyless = tuple(
            sorted(s for s, body in services.get(name, {}).items() if not body.auth.required)
        )
        if is_loopback(gateway.host) or not keyless:
            continue
        exposures.append(
            Exposure(_host_path(spec, name), gateway.host, keyless, gateway.allow_unauthenticated)
        )
    return exposures


def _host_path(spec: FleetSpec, environment: str) -> DocPath:
    override = spec.environments[environment].gateway
    if override is not None and "host" in override.model_fields_set:
        return ("environments", environment, "gateway", "host")
    return ("gateway", "host")
