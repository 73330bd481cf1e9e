"""Replicas found by name: each service's host name resolved again and again, one
replica an address (a docker-compose file's gateway).

Docker's DNS answers a compose service's name with the address of each of its
containers (``deploy.replicas``), as a cluster's DNS answers a headless Service.
``DnsSource`` is a ``ReplicaSource``, as the EndpointSlice watch is: it resolves
every service's name each ``interval_s`` and yields a snapshot when the addresses
change. DNS says nothing of readiness, so every address is routed as ready: a
container still loading its model, or gone, fails the prober's ``/health`` and is
ejected until a probe passes (``gateway.health``), and a request that finds it
dead is retried on another replica. A name that does not resolve (no container
started yet) has no replicas.

It reads the ``services.json`` a cluster's gateway reads (``discovery``), with the
compose service's name as each service's ``endpoints.service``; engine keys come
from the files it names (the compose file's secrets).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.discovery import ClusterServices, cluster_snapshot, endpoint_replica
from llmfleet.gateway.replicas import Snapshot

log = logging.getLogger(__name__)
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""host, port -> the addresses it resolves to (empty: none)."""


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, each once, sorted; [] when it resolves to none."""
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({str(sockaddr[0]) for *_, sockaddr in found})


class DnsSource:
    """Follows the addresses of ``cluster``'s service names; see the module docstring."""

    def __init__(
        self,
        cluster: ClusterServices,
        *,
        interval_s: float = 2.0,
        resolve: Resolver = resolve_addresses,
    ) -> None:
        self.cluster = cluster
        self.interval_s = interval_s
        self.resolve = resolve
        self.hosts = {service: host for host, service in cluster.by_kubernetes_name.items()}
        self.generation = 0

    async def watch(self) -> AsyncIterator[Snapshot]:
        seen: dict[str, list[str]] | None = None
        while True:
            found = {service: await self._addresses(service) for service in sorted(self.hosts)}
            if found != seen:
                for service, addresses in found.items():
                    if seen is None or addresses != seen.get(service):
                        log.info("%s (%s): %s", service, self.hosts[service],
                                 ", ".join(addresses) or "no address")  # fmt: skip
                seen = found
                yield self.snapshot(found)
            await asyncio.sleep(self.interval_s)

    async def _addresses(self, service: str) -> list[str]:
        try:
            found = await self.resolve(self.hosts[service], self.cluster.ports[service])
        except OSError as exc:  # a resolver that fails is a name with no address now
            log.warning("resolving %s: %s", self.hosts[service], exc)
            return []
        return sorted(set(found))

    def snapshot(self, found: dict[str, list[str]]) -> Snapshot:
        self.generation += 1
        replicas: list[ReplicaStatus] = []
        for service, addresses in found.items():
            host, port = self.hosts[service], self.cluster.ports[service]
            for address in addresses:
                replicas.append(endpoint_replica(
                    self.cluster, service, f"{host}@{address}", address, port,
                    ReplicaState.READY, len(replicas),
                ))  # fmt: skip
        return cluster_snapshot(self.cluster, replicas, self.generation)
