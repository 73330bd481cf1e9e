"""The gateway as an aiohttp application: ``create_app`` wires the parts.

One ``Gateway`` object per app holds everything with state (route table,
health, quotas, retry budgets, metrics, the shared upstream session); nothing
is module-level. Background tasks (following the replica source, probing
replicas) start and stop with the app via ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from llmfleet.backends.base import ReplicaStatus
from llmfleet.gateway.admission import Router
from llmfleet.gateway.errors import ApiError
from llmfleet.gateway.failover import Failover
from llmfleet.gateway.handlers import SERVICE_KEY, Handlers
from llmfleet.gateway.health import HealthTracker, Prober
from llmfleet.gateway.keys import KeyVerifier
from llmfleet.gateway.metrics import GatewayMetrics
from llmfleet.gateway.quotas import Quotas
from llmfleet.gateway.replicas import ReplicaSource
from llmfleet.gateway.upstream import UpstreamClient

if TYPE_CHECKING:  # imported by main() only when tracing or request logs are on
    from llmfleet.observe.requests import RequestObserver


@dataclass(frozen=True)
class GatewayConfig:
    """Gateway-wide knobs that are not per service (those live in the spec)."""

    probe_interval_s: float = 1.0
    probe_timeout_s: float = 2.0
    eject_s: float = 1.0
    consecutive_5xx: int = 3
    max_body_bytes: int = 64 * 1024 * 1024
    """hard cap before the service is known; each service's own limit applies after."""
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
            clock=clock, eject_s=config.eject_s, consecutive_5xx=config.consecutive_5xx,
            on_change=lambda _replica, _ejected: self.router.wake_all(),
        )
        self.prober = Prober(
            self.health, self._probe_targets,
            interval_s=config.probe_interval_s, timeout_s=config.probe_timeout_s,
        )
        self.router = Router(
            is_ejected=self.health.is_ejected, engine_waiting=self.prober.waiting, clock=clock
        )
        self.metrics.watch_router(self.router)
        self.quotas = Quotas(clock)
        self.synced = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._failover: Failover | None = None

    @property
    def failover(self) -> Failover:
        if self._failover is None:
            raise RuntimeError("the gateway is not started")
        return self._failover

    def _probe_targets(self) -> list[ReplicaStatus]:
        return [r for name in self.router.snapshot.services for r in self.router.routable(name)]

    async def _follow_source(self) -> None:
        async for snapshot in self.source.watch():
            self.router.update(snapshot)
            self.health.forget(r.replica_id for r in snapshot.replicas)
            self.synced.set()

    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=None)
        # no cookie jar: engines set no cookies, and the jar costs time on every request
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._failover = Failover(
            router=self.router, upstream=UpstreamClient(self._session), health=self.health,
            metrics=self.metrics, clock=self.clock, keepalive_s=self.config.keepalive_s,
        )
        tasks = [
            asyncio.create_task(self._follow_source(), name="gateway-source"),
            asyncio.create_task(self.prober.run(self._session), name="gateway-prober"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._session.close()


GATEWAY_KEY = web.AppKey("gateway", Gateway)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Render ``ApiError`` as OpenAI JSON; count it by status."""
    try:
        return await handler(request)
    except ApiError as exc:
        gateway = request.app[GATEWAY_KEY]
        service = request.get(SERVICE_KEY, "")
        gateway.metrics.of(service).count_request(request.path, str(exc.status))
        return exc.response()
    except web.HTTPException as exc:
        if exc.status == 404:
            return ApiError(404, f"no route {request.method} {request.path}",
                            type_="invalid_request_error", code="not_found").response()
        if exc.status == 405:
            return ApiError(405, f"{request.method} is not allowed on {request.path}",
                            type_="invalid_request_error", code="method_not_allowed").response()
        raise


def create_app(
    source: ReplicaSource,
    *,
    key_verifier: KeyVerifier | None = None,
    clock: Callable[[], float] | None = None,
    config: GatewayConfig | None = None,
) -> web.Application:
    """The gateway app; ``source`` feeds it services and replicas."""
    config = config or GatewayConfig()
    gateway = Gateway(
        source, key_verifier=key_verifier, clock=clock or time.monotonic, config=config
    )
    app = web.Application(middlewares=[error_middleware], client_max_size=config.max_body_bytes)
    app[GATEWAY_KEY] = gateway
    app.cleanup_ctx.append(gateway.lifecycle)
    Handlers(gateway).add_routes(app)
    return app
