"""Replicas in a Kubernetes cluster: the EndpointSlices of each service's headless Service.

``EndpointSliceSource`` is a ``ReplicaSource``, as the local agent's feed is: the
gateway's routing, failover and resume do not know which one they follow. It
keeps the slices the way an informer does: LIST (a full picture and its
``resourceVersion``), then WATCH from that version; a dropped stream is watched
again from the last version seen (bookmarks included), and a version the server
has compacted away (410 Gone) means LIST again. Every change yields a whole
snapshot.

An endpoint that is ready is routed; one that is terminating is draining: no new
request goes to it, while streams already on it finish (its pod's preStop drain
and grace period allow for that) or, if it goes away first, are resumed
elsewhere by the failover code. Any other endpoint is starting.

What to watch comes from the gateway's ConfigMap (``services.json``, rendered by
``backends.kubernetes.gateway``). The API server is reached with the pod's
service account (in-cluster) or at a plain URL (``kubectl proxy``, tests). This
control-plane client is aiohttp's, not the gateway's own upstream client: it needs
TLS, a bearer token and long-lived streams, none of which the engines need.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.replicas import Snapshot
from llmfleet.spec.model import ServiceSpec

log = logging.getLogger(__name__)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
Obj = dict[str, Any]


class GoneError(Exception):
    """The watch's resourceVersion was compacted away: list again."""


@dataclass(frozen=True)
class ClusterServices:
    """The gateway's ConfigMap: what it routes and which Services' slices to watch."""

    environment: str
    namespace: str
    services: dict[str, ServiceSpec]
    by_kubernetes_name: dict[str, str]
    """headless Service name -> llmfleet service name."""
    ports: dict[str, int]
    key_files: dict[str, str] = field(default_factory=dict)
    continuation: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_cluster_services(path: Path) -> ClusterServices:
    """Read ``services.json``; raises ``ValueError`` (pydantic's included) if malformed."""
    body = json.loads(path.read_text())
    entries = dict(body["services"])
    return ClusterServices(
        environment=str(body["environment"]),
        namespace=str(body.get("namespace", "")),
        services={n: ServiceSpec.model_validate(e["spec"]) for n, e in entries.items()},
        by_kubernetes_name={str(e["endpoints"]["service"]): n for n, e in entries.items()},
        ports={n: int(e["endpoints"]["port"]) for n, e in entries.items()},
        key_files={n: str(e["key_file"]) for n, e in entries.items() if e.get("key_file")},
        continuation={n: dict(e.get("continuation") or {}) for n, e in entries.items()},
    )


def endpoint_state(conditions: Mapping[str, Any]) -> ReplicaState:
    """An endpoint's conditions as a replica state; pure. ``ready`` left out means ready
    (the EndpointSlice API says so); terminating wins over everything."""
    if conditions.get("terminating"):
        return ReplicaState.DRAINING
    if conditions.get("ready") is False:
        return ReplicaState.STARTING
    return ReplicaState.READY


def replicas_of(cluster: ClusterServices, slices: Mapping[str, Obj]) -> list[ReplicaStatus]:
    """Every endpoint of the watched slices as a replica; pure."""
    replicas: list[ReplicaStatus] = []
    for name in sorted(slices):
        body = slices[name]
        service = cluster.by_kubernetes_name.get(body["metadata"]["labels"][SERVICE_NAME_LABEL])
        if service is None:
            continue
        ports = body.get("ports") or []
        port = next((p["port"] for p in ports if p.get("port")), cluster.ports[service])
        for endpoint in body.get("endpoints") or ():
            address = endpoint["addresses"][0]
            pod = (endpoint.get("targetRef") or {}).get("name") or f"{address}:{port}"
            state = endpoint_state(endpoint.get("conditions") or {})
            replicas.append(
                endpoint_replica(cluster, service, pod, address, int(port), state, len(replicas))
            )
    return replicas


def endpoint_replica(
    cluster: ClusterServices,
    service: str,
    replica_id: str,
    address: str,
    port: int,
    state: ReplicaState,
    slot: int,
) -> ReplicaStatus:
    """One replica of ``service`` at ``address``:``port``, however it was found; pure."""
    spec = cluster.services[service]
    # an agent answers its own health path, which the gateway's probe must use
    config = {"agent": {"health_path": spec.agent.health_path}} if spec.agent is not None else {}
    return ReplicaStatus(
        replica_id=replica_id, environment=cluster.environment, service=service, slot=slot,
        runtime_hash="", engine=spec.engine.kind, engine_version=spec.engine.version,
        state=state, port=port, served_name=service,
        host=f"[{address}]" if ":" in address else address, config=config,
    )  # fmt: skip


def cluster_snapshot(
    cluster: ClusterServices, replicas: list[ReplicaStatus], generation: int
) -> Snapshot:
    """What the gateway routes by, from the replicas found however they were found."""
    return Snapshot(
        services=cluster.services,
        replicas=replicas,
        generation=generation,
        continuation=cluster.continuation,
        engine_keys=engine_keys(cluster, replicas),
    )


def engine_keys(cluster: ClusterServices, replicas: list[ReplicaStatus]) -> dict[str, str]:
    """replica id -> the key its engine wants, read from the service's key file now (a
    rotated Secret is read at the next snapshot); a service without one wants none."""
    by_service = {}
    for service, path in cluster.key_files.items():
        try:
            by_service[service] = Path(path).read_text().strip()
        except OSError:
            continue  # no key file mounted: the engine wants no key
    return {r.replica_id: key for r in replicas if (key := by_service.get(r.service))}


@dataclass(frozen=True)
class ApiServer:
    """Where the API server is and how to prove who we are."""

    url: str
    account_dir: Path | None = None
    """the service account's token and CA (in-cluster); None: a plain URL, no token."""

    @classmethod
    def in_cluster(cls, account_dir: Path = ACCOUNT_DIR) -> ApiServer:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise ValueError(
                "not in a cluster (no KUBERNETES_SERVICE_HOST); pass --kubernetes-api URL"
            )
        host = f"[{host}]" if ":" in host else host
        return cls(url=f"https://{host}:{port}", account_dir=account_dir)

    def headers(self) -> dict[str, str]:
        """Read the token at each connection: a projected token is rotated in place."""
        if self.account_dir is None:
            return {}
        token = (self.account_dir / "token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The cluster's CA in a cluster; True (the default checks) for a plain URL."""
        if self.account_dir is None:
            return True
        return ssl.create_default_context(cafile=str(self.account_dir / "ca.crt"))


class EndpointSliceSource:
    """Follows the EndpointSlices of ``cluster``'s Services; see the module docstring."""

    def __init__(
        self,
        cluster: ClusterServices,
        api: ApiServer,
        *,
        retry_s: float = 1.0,
        watch_s: int = 300,
    ) -> None:
        self.cluster = cluster
        self.api = api
        self.retry_s = retry_s
        self.watch_s = watch_s
        names = ",".join(sorted(cluster.by_kubernetes_name))
        self.selector = f"{SERVICE_NAME_LABEL} in ({names})"
        self.slices: dict[str, Obj] = {}
        self.version: str | None = None
        self.generation = 0

    async def watch(self) -> AsyncIterator[Snapshot]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.watch_s + 30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    if self.version is None:
                        await self._list(session)
                        yield self.snapshot()
                    async for _ in self._watch(session):
                        yield self.snapshot()
                except GoneError:
                    log.info("endpoint slices: version %s is gone; listing again", self.version)
                    self.version = None
                except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as exc:
                    log.warning("endpoint slices: %s; trying again in %g s", exc, self.retry_s)
                    await asyncio.sleep(self.retry_s)

    def snapshot(self) -> Snapshot:
        self.generation += 1
        return cluster_snapshot(self.cluster, replicas_of(self.cluster, self.slices),
                                self.generation)  # fmt: skip

    def _url(self, **query: str) -> str:
        path = SLICES_PATH.format(namespace=self.cluster.namespace)
        return f"{self.api.url}{path}?{urlencode({'labelSelector': self.selector, **query})}"

    async def _list(self, session: aiohttp.ClientSession) -> None:
        async with session.get(
            self._url(), headers=self.api.headers(), ssl=self.api.ssl_context()
        ) as resp:
            if resp.status != 200:
                raise ValueError(f"listing answered {resp.status}: {(await resp.text())[:300]}")
            body = await resp.json()
        self.slices = {item["metadata"]["name"]: item for item in body["items"]}
        self.version = str(body["metadata"]["resourceVersion"])

    async def _watch(self, session: aiohttp.ClientSession) -> AsyncIterator[None]:
        """Apply each event to ``slices``; yields after each change. Ends when the server
        ends the stream (its timeout, a restart): the caller watches again."""
        query = {"watch": "true", "resourceVersion": self.version or "",
                 "allowWatchBookmarks": "true", "timeoutSeconds": str(self.watch_s)}  # fmt: skip
        async with session.get(
            self._url(**query), headers=self.api.headers(), ssl=self.api.ssl_context()
        ) as resp:
            if resp.status == 410:
                raise GoneError
            if resp.status != 200:
                raise ValueError(f"watching answered {resp.status}: {(await resp.text())[:300]}")
            async for line in resp.content:
                if line.strip() and self._apply_event(json.loads(line)):
                    yield None

    def _apply_event(self, event: Obj) -> bool:
        """Apply one watch event; True when the slices changed."""
        kind, body = event["type"], event["object"]
        if kind == "ERROR":
            if body.get("code") == 410:
                raise GoneError
            raise ValueError(f"watch error: {body.get('message')}")
        self.version = str(body["metadata"]["resourceVersion"])
        if kind == "BOOKMARK":
            return False
        name = body["metadata"]["name"]
        if kind == "DELETED":
            self.slices.pop(name, None)
        else:
            self.slices[name] = body
        return True
