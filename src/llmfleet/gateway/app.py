"""The gateway as an application: ``create_app`` wires the parts.

One ``Gateway`` object per app holds everything with state (route table,
health, quotas, retry budgets, metrics, the upstream connection pool); nothing
is module-level. Background tasks (following the replica source, probing
replicas) start and stop with it. ``GatewayApp`` puts it behind the gateway's
own HTTP server (``server``): routing is a dict lookup, and an ``ApiError``
from a handler is rendered once, here. Before a request's body is read, the
server shows its head to ``GatewayApp.check_head``, which judges it by the
services and the caller's key (``intake``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from llmfleet.backends.base import ReplicaStatus
from llmfleet.gateway import errors
from llmfleet.gateway.admission import Router
from llmfleet.gateway.errors import ApiError
from llmfleet.gateway.failover import Failover
from llmfleet.gateway.handlers import MODEL_PATH, MODEL_PREFIX, Handlers
from llmfleet.gateway.health import HealthTracker, Prober
from llmfleet.gateway.intake import (
    Deferred,
    Head,
    KeyState,
    Limits,
    ServiceLimits,
    Verdict,
    check_head,
)
from llmfleet.gateway.keys import KeyInfo, KeyVerifier, Lookup, secret_in
from llmfleet.gateway.messages import Answer, Request
from llmfleet.gateway.metrics import GatewayMetrics
from llmfleet.gateway.pool import ConnectionPool
from llmfleet.gateway.quotas import Quotas
from llmfleet.gateway.replicas import ReplicaSource, Snapshot, engine_credentials
from llmfleet.gateway.server import Server
from llmfleet.gateway.upstream import UpstreamClient

if TYPE_CHECKING:  # imported by main() only when tracing or request logs are on
    from llmfleet.observe.requests import RequestObserver


@dataclass(frozen=True)
class GatewayConfig:
    """Gateway-wide knobs that are not per service (those live in the spec)."""

    probe_interval_s: float = 1.0
    probe_timeout_s: float = 2.0
    probe_max_per_round: int = 100
    """most replicas one probe round asks (ejected ones aside): past it they take turns,
    so one gateway in front of 1,000 replicas asks each every 10 s, not 2,000 requests a
    second."""
    eject_s: float = 1.0
    consecutive_5xx: int = 3
    max_body_bytes: int = 64 * 1024 * 1024
    """hard cap before the service is known; each service's own limit applies after."""
    limits: Limits = field(default_factory=Limits)
    """what one client may take: read timeouts, connections, body memory."""
    keepalive_s: float = 5.0
    """how often a started stream waiting for a replica gets an SSE comment."""


class Gateway:
    """Everything one gateway instance owns."""

    def __init__(
        self,
        source: ReplicaSource,
        *,
        key_verifier: KeyVerifier | None,
        clock: Callable[[], float],
        config: GatewayConfig,
    ) -> None:
        self.source = source
        self.key_verifier = key_verifier
        self.clock = clock
        self.config = config
        self.metrics = GatewayMetrics()
        self.observe: RequestObserver | None = None  # tracing, request logs: main() sets
        self.health = HealthTracker(
            clock=clock,
            eject_s=config.eject_s,
            consecutive_5xx=config.consecutive_5xx,
            on_change=lambda _replica, _ejected: self.router.wake_all(),
        )
        self.prober = Prober(
            self.health,
            self._probe_targets,
            interval_s=config.probe_interval_s,
            timeout_s=config.probe_timeout_s,
            max_per_round=config.probe_max_per_round,
        )
        self.router = Router(
            is_ejected=self.health.is_ejected, engine_waiting=self.prober.waiting, clock=clock
        )
        self.metrics.watch_router(self.router)
        self.quotas = Quotas(clock)
        self.synced = asyncio.Event()
        self._pool: ConnectionPool | None = None
        self._failover: Failover | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def failover(self) -> Failover:
        if self._failover is None:
            raise RuntimeError("the gateway is not started")
        return self._failover

    def _probe_targets(self) -> list[ReplicaStatus]:
        return [r for name in self.router.snapshot.services for r in self.router.routable(name)]

    async def _follow_source(self) -> None:
        async for snapshot in self.source.watch():
            if self._pool is not None:  # before routing: a new replica's first request needs it
                self._pool.set_credentials(engine_credentials(snapshot))
            self.router.update(snapshot)
            self.health.forget(r.replica_id for r in snapshot.replicas)
            self.synced.set()

    async def start(self) -> None:
        """Open the upstream connection pool (requests and probes share it); follow the
        source, probe."""
        self._pool = ConnectionPool(keepalive_s=30.0)
        self._failover = Failover(
            router=self.router,
            upstream=UpstreamClient(self._pool),
            health=self.health,
            metrics=self.metrics,
            clock=self.clock,
            keepalive_s=self.config.keepalive_s,
        )
        self._tasks = [
            asyncio.create_task(self._follow_source(), name="gateway-source"),
            asyncio.create_task(self.prober.run(self._pool), name="gateway-prober"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._pool is not None:
            self._pool.close()


Route = Callable[[Request], Awaitable[Answer]]


class GatewayApp:
    """The gateway behind its HTTP server: routes requests to ``Handlers`` and renders
    ``ApiError`` as OpenAI JSON, counted by status."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.routes: dict[str, dict[str, Route]] = Handlers(gateway).routes()
        self.server = Server(
            self.handle,
            max_body_bytes=gateway.config.max_body_bytes,
            limits=gateway.config.limits,
            check_head=self.check_head,
        )
        self._service_paths = frozenset(p for p, m in self.routes.items() if "POST" in m)
        self._limits_of: Snapshot | None = None
        self._limits: ServiceLimits | None = None

    def check_head(self, head: Head) -> Verdict:
        """What a request's headers decide before its body is read (``intake``): the
        largest body its caller may send, an error (counted here), or a wait for its
        key to be looked up."""
        limits = self._service_limits()
        if limits is None or head.method != "POST" or head.path not in self._service_paths:
            return None
        key: KeyInfo | KeyState = KeyState.MISSING
        secret = secret_in(head.headers) if limits.keyed else None
        verifier = self.gateway.key_verifier
        if secret is not None and verifier is not None:
            known = verifier.peek(secret)
            if isinstance(known, Lookup):
                key = KeyState.UNVERIFIED
                verdict = check_head(limits, length=head.length, key=key)
                if isinstance(verdict, int):
                    return Deferred(verdict, partial(verifier.verify, secret))
            else:
                key = KeyState.INVALID if known is None else known
        elif secret is not None:
            key = KeyState.INVALID  # no keys at all: none is valid
        verdict = check_head(limits, length=head.length, key=key)
        if isinstance(verdict, ApiError):
            self.gateway.metrics.of("").count_request(head.path, str(verdict.status))
        return verdict

    def _service_limits(self) -> ServiceLimits | None:
        snapshot = self.gateway.router.snapshot
        if snapshot is not self._limits_of:
            self._limits_of = snapshot
            self._limits = ServiceLimits.of(snapshot.services) if snapshot.services else None
        return self._limits

    async def handle(self, request: Request) -> Answer:
        if request.oversize is not None:  # a body that grew past its limit as it came
            head = Head(request.method, request.path, list(request.headers.items()), None)
            verdict = self.check_head(replace(head, length=request.oversize))
            if isinstance(verdict, ApiError):
                return verdict.response()
        methods = self.routes.get(request.path)
        if methods is None and request.path.startswith(MODEL_PREFIX):
            methods = self.routes[MODEL_PATH]
        if methods is None:
            return errors.not_found(request.method, request.path).response()
        route = methods.get(request.method)
        if route is None and request.method == "HEAD":
            route = methods.get("GET")
        if route is None:
            return errors.method_not_allowed(request.method, request.path).response()
        try:
            return await route(request)
        except ApiError as exc:
            series = self.gateway.metrics.of(request.service)
            series.count_request(request.path, str(exc.status))
            return exc.response()

    async def serve(
        self, *, sock: socket.socket | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Start the gateway, then answer on ``sock`` or ``host``:``port`` (0: a free one)."""
        await self.gateway.start()
        await self.server.start(sock=sock, host=host, port=port)

    @property
    def port(self) -> int:
        return self.server.port

    async def close(self, *, grace_s: float = 10.0) -> None:
        """Stop answering (answers in progress get ``grace_s``), then stop the gateway."""
        await self.server.close(grace_s=grace_s)
        await self.gateway.stop()


def create_app(
    source: ReplicaSource,
    *,
    key_verifier: KeyVerifier | None = None,
    clock: Callable[[], float] | None = None,
    config: GatewayConfig | None = None,
) -> GatewayApp:
    """The gateway app; ``source`` feeds it services and replicas."""
    config = config or GatewayConfig()
    gateway = Gateway(
        source, key_verifier=key_verifier, clock=clock or time.monotonic, config=config
    )
    return GatewayApp(gateway)
