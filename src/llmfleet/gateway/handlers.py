"""HTTP routes of the gateway: the OpenAI API plus health, readiness and metrics.

A generation request is read and checked (size, JSON, model, key, quota),
then handed to ``Failover``: streamed to the client (SSE) or collected into
one JSON body. Upstream is asked to stream with usage, so the gateway can
continue a broken answer and count tokens; a non-streaming request of a
service with ``retries.resume_non_streaming: false`` (or one that cannot be
continued: tools, n > 1, ...) goes upstream as it came, bytes unchanged, and
its answer comes back unchanged too.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmfleet.errors import PermanentUpstreamError
from llmfleet.gateway import errors
from llmfleet.gateway.balancing import prefix_key_of
from llmfleet.gateway.failover import Call, permanent_response
from llmfleet.gateway.keys import KeyInfo, authorize
from llmfleet.gateway.resume import DEFAULT_CONTINUATION, is_resumable
from llmfleet.gateway.sinks import JsonSink, SseSink
from llmfleet.gateway.stream import StreamState
from llmfleet.spec.model import RoutingStrategy, ServiceSpec

if TYPE_CHECKING:
    from llmfleet.gateway.app import Gateway

SERVICE_KEY = web.RequestKey("service", str)
"""The service a request named, once known (for error metrics)."""


class Handlers:
    """Route handlers bound to one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/metrics", self.metrics)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        call, key = await self._admit(request, required="messages" if chat else "prompt")
        call.chat = chat
        body = call.body
        stream = body.get("stream") is True
        call.resumable = is_resumable(chat, body)
        observe = self.gw.observe
        if observe is not None:
            call.trace = observe.start(request.headers, call)
        retries = call.spec.retries
        status: str | None = "200"
        usage: dict[str, Any] | None = None
        try:
            if not stream and not (
                call.resumable and retries.resume_streams and retries.resume_non_streaming
            ):
                data = await self.gw.failover.plain(call)
                usage = _usage_of(data)
                return web.Response(body=data, content_type="application/json")
            state = StreamState(
                chat=chat, model=str(body["model"]),
                include_usage=stream and bool(
                    (body.get("stream_options") or {}).get("include_usage")
                ),
            )
            sink = SseSink(request) if stream else JsonSink()
            try:
                return await self.gw.failover.stream(call, state, sink)
            finally:
                usage = state.client_usage()
        except PermanentUpstreamError as exc:
            status = str(exc.status)
            return permanent_response(exc)
        except errors.ApiError:
            status = None  # counted by the error middleware, which renders it
            raise
        finally:
            self._account(call, status, key, usage)
            if observe is not None:
                observe.finish(call, status or "500", usage, sys.exc_info()[1])

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        call, key = await self._admit(request, required="input")
        status: str | None = "200"
        usage: dict[str, Any] | None = None
        try:
            data = await self.gw.failover.plain(call)
            usage = _usage_of(data)
            return web.Response(body=data, content_type="application/json")
        except PermanentUpstreamError as exc:
            status = str(exc.status)
            return permanent_response(exc)
        except errors.ApiError:
            status = None  # counted by the error middleware, which renders it
            raise
        finally:
            self._account(call, status, key, usage)

    async def _admit(self, request: web.Request, *, required: str) -> tuple[Call, KeyInfo | None]:
        """Read and check a request up to the point it may go upstream."""
        started = self.gw.clock()
        raw = await self._read(request)
        body = _parse_body(raw, required)
        name = body["model"]
        spec = self.gw.router.service(name)
        if spec is None:
            raise errors.unknown_model(name, list(self.gw.router.snapshot.services))
        request[SERVICE_KEY] = name
        if len(raw) > spec.admission.max_body_bytes:
            raise errors.too_large(len(raw), spec.admission.max_body_bytes)
        key = await authorize(self.gw.key_verifier, request.headers, name,
                              required=spec.auth.required)
        if key is not None:
            self.gw.quotas.admit(key)
        routing = spec.routing
        call = Call(
            service=name, spec=spec, path=request.path, chat=True, body=body, started_at=started,
            raw=raw, continuation=self._continuation(name, spec),
            prefix_key=prefix_key_of(body, routing.prefix_chars)
            if routing.strategy == RoutingStrategy.PREFIX_AFFINITY else None,
        )
        return call, key

    def _continuation(self, name: str, spec: ServiceSpec) -> dict[str, Any]:
        fields = self.gw.router.snapshot.continuation.get(name)
        return fields if fields is not None else DEFAULT_CONTINUATION.get(spec.engine.kind, {})

    async def _read(self, request: web.Request) -> bytes:
        limit = self.gw.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise errors.too_large(request.content_length, limit)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise errors.too_large(request.content_length or limit + 1, limit) from exc

    def _account(
        self, call: Call, status: str | None, key: KeyInfo | None, usage: dict[str, Any] | None
    ) -> None:
        series, now = self.gw.metrics.of(call.service), self.gw.clock()
        if status is not None:
            series.count_request(call.path, status)
        series.e2e.observe(now - call.started_at)
        series.overhead.observe(call.overhead_s)
        series.observe_usage(usage)
        if key is not None and usage:
            self.gw.quotas.charge(key, int(usage.get("total_tokens", 0)))

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "llmfleet"}
            for name in sorted(self.gw.router.snapshot.services)
        ]
        return web.json_response({"object": "list", "data": data})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        router = self.gw.router
        routable = {
            name: sum(not self.gw.health.is_ejected(r.replica_id) for r in router.routable(name))
            for name in router.snapshot.services
        }
        ok = any(routable.values())
        return web.json_response(
            {"status": "ready" if ok else "not ready", "services": routable},
            status=200 if ok else 503,
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.gw.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _parse_body(raw: bytes, required: str) -> dict[str, Any]:
    """The JSON object of a request with a string ``model`` and the ``required`` field."""
    try:
        body = orjson.loads(raw)
    except ValueError as exc:
        raise errors.bad_request(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise errors.bad_request("the body must be a JSON object")
    if not isinstance(body.get("model"), str):
        raise errors.bad_request("'model' is required and must be a string (a service name)")
    if required == "messages" and (not isinstance(body.get("messages"), list)
                                   or not body["messages"]):
        raise errors.bad_request("'messages' must be a non-empty list")
    if required not in body:
        raise errors.bad_request(f"'{required}' is required")
    return body


def _usage_of(data: bytes) -> dict[str, Any] | None:
    try:
        usage = orjson.loads(data).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None
