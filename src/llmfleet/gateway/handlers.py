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

import asyncio
import re
import sys
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmfleet.errors import PermanentUpstreamError
from llmfleet.gateway import errors
from llmfleet.gateway.balancing import prefix_key_of
from llmfleet.gateway.bodies import BodyKind, check_body, service_of
from llmfleet.gateway.capabilities import TOOL_FIELDS, why_no_embeddings, why_no_tools
from llmfleet.gateway.failover import Call
from llmfleet.gateway.keys import KeyInfo, authorize, refuse_out_of_scope
from llmfleet.gateway.messages import Answer, Request, Response, json_response
from llmfleet.gateway.resume import is_resumable, with_cached_tokens
from llmfleet.gateway.sinks import JsonSink, SseSink
from llmfleet.gateway.stream import StreamState
from llmfleet.spec.model import RoutingStrategy, ServiceSpec

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from llmfleet.gateway.app import Gateway
    from llmfleet.gateway.replicas import Snapshot
    from llmfleet.observe.requests import RequestObserver


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def passed_trace(traceparent: str | None) -> bytes:
    """The client's ``traceparent`` for an agent, as the gateway got it: an agent calls
    models in the client's trace even when the gateway does not trace (when it does, the
    attempt's own ``traceparent`` replaces this one)."""
    if traceparent is None or not _TRACEPARENT.match(traceparent):
        return b""
    return f"traceparent: {traceparent}\r\n".encode("ascii")


class Handlers:
    """Route handlers bound to one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def routes(self) -> dict[str, dict[str, Callable[[Request], Awaitable[Answer]]]]:
        """path -> method -> handler (a GET route answers HEAD too)."""
        return {
            "/v1/chat/completions": {"POST": self.chat},
            "/v1/completions": {"POST": self.completions},
            "/v1/embeddings": {"POST": self.embeddings},
            "/v1/models": {"GET": self.models},
            MODEL_PATH: {"GET": self.model},
            "/health": {"GET": self.health},
            "/ready": {"GET": self.ready},
            "/metrics": {"GET": self.metrics},
        }

    async def chat(self, request: Request) -> Answer:
        return await self._generate(request, chat=True)

    async def completions(self, request: Request) -> Answer:
        return await self._generate(request, chat=False)

    async def _generate(self, request: Request, *, chat: bool) -> Answer:
        call, key = await self._admit(request, BodyKind.CHAT if chat else BodyKind.COMPLETION)
        call.chat = chat
        body = call.body
        stream = body.get("stream") is True
        call.resumable = is_resumable(chat, body)
        observe = self._observe(request, call)
        retries = call.spec.retries
        status: str | None = "200"
        usage: dict[str, Any] | None = None
        try:
            if not stream and not (
                call.resumable and retries.resume_streams and retries.resume_non_streaming
            ):
                data = await self.gw.failover.plain(call)
                usage = _usage_of(data)
                return Response(data)
            state = StreamState(
                chat=chat,
                model=str(body["model"]),
                include_usage=stream
                and bool((body.get("stream_options") or {}).get("include_usage")),
            )
            sink = SseSink(request) if stream else JsonSink()
            try:
                return await self.gw.failover.stream(call, state, sink)
            finally:
                usage = state.produced_usage()
        except PermanentUpstreamError as exc:
            refusal = errors.engine_refused(call.service, exc.status, exc.body)
            status = str(refusal.status)
            return refusal.response()
        except BaseException as exc:
            status = _failed_status(exc)
            raise
        finally:
            self._account(call, status, key, usage)
            if observe is not None:
                observe.finish(call, status, usage, sys.exc_info()[1])

    async def embeddings(self, request: Request) -> Answer:
        call, key = await self._admit(request, BodyKind.EMBEDDING)
        self._check_serves_embeddings(call)
        observe = self._observe(request, call)
        status: str | None = "200"
        usage: dict[str, Any] | None = None
        try:
            data = await self.gw.failover.plain(call)
            usage = _usage_of(data)
            return Response(data)
        except PermanentUpstreamError as exc:
            refusal = errors.engine_refused(call.service, exc.status, exc.body)
            status = str(refusal.status)
            return refusal.response()
        except BaseException as exc:
            status = _failed_status(exc)
            raise
        finally:
            self._account(call, status, key, usage)
            if observe is not None:
                observe.finish(call, status, usage, sys.exc_info()[1])

    def _check_serves_embeddings(self, call: Call) -> None:
        """400 before any replica is asked when the service's engine, as the spec
        starts it, serves no embeddings."""
        reason = why_no_embeddings(call.spec)
        if reason is not None:
            services = self.gw.router.snapshot.services
            serving = sorted(n for n, s in services.items() if why_no_embeddings(s) is None)
            raise errors.no_embeddings(call.service, reason, serving)

    def _observe(self, request: Request, call: Call) -> RequestObserver | None:
        """Start the request's trace (child of the client's ``traceparent``, if any);
        the gateway's observer, None when tracing and request logs are off."""
        observe = self.gw.observe
        if observe is not None and observe.tracing is not None:
            parent = request.traceparent
            observe.start(call, parent, request.header("tracestate") if parent else None)
            if call.trace is not None and not request.has_client_request_id:
                request.request_id = call.trace.ids[0]  # one id for the answer, log and trace
        call.request_id = request.request_id if observe is not None else ""
        return observe

    async def _admit(self, request: Request, kind: BodyKind) -> tuple[Call, KeyInfo | None]:
        """Check a request up to the point it may go upstream."""
        started = self.gw.clock()
        raw = self._body(request)
        body = _parse_body(raw)
        name = service_of(body)
        spec = self.gw.router.service(name)
        if spec is None:
            raise errors.unknown_model(name, list(self.gw.router.snapshot.services))
        request.service = name
        if len(raw) > spec.admission.max_body_bytes:
            raise errors.too_large(len(raw), spec.admission.max_body_bytes)
        key = None
        if spec.auth.required:
            key = await authorize(self.gw.key_verifier, request.headers, name, required=True)
            if key is not None:
                self._admit_key(request, key)
        else:
            key = await refuse_out_of_scope(self.gw.key_verifier, request.headers, name)
        check_body(kind, body)
        if kind is BodyKind.CHAT:
            _check_tools(name, spec, body)
        routing = spec.routing
        call = Call(
            service=name,
            spec=spec,
            path=request.path,
            chat=True,
            body=body,
            started_at=started,
            raw=raw,
            continuations=self.gw.router.snapshot.continuation,
            prefix_key=prefix_key_of(body, routing.prefix_chars)
            if routing.strategy == RoutingStrategy.PREFIX_AFFINITY
            else None,
            key_name=key.name if key is not None else None,
        )
        if spec.agent is not None:
            call.upstream_head = passed_trace(request.traceparent)
        return call, key

    def _admit_key(self, request: Request, key: KeyInfo) -> None:
        """Take one request from the key's quotas (429 when they are spent); the answer,
        429 included, carries their state in ``x-ratelimit-*`` headers."""
        quotas = self.gw.quotas
        try:
            quotas.admit(key)
        finally:
            if key.rpm is not None or key.tpm is not None:
                request.reply_headers = quotas.headers(key)

    def _body(self, request: Request) -> bytes:
        """The body; one over the gateway-wide cap was not read (the server drains it)."""
        if request.oversize is not None:
            raise errors.too_large(request.oversize, self.gw.config.max_body_bytes)
        return request.body

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
            self.gw.metrics.count_agent_usage(key.name, call.service, usage)

    async def models(self, request: Request) -> Answer:
        snapshot = self.gw.router.snapshot
        data = [_model(name, snapshot) for name in sorted(snapshot.services)]
        return json_response({"object": "list", "data": data})

    async def model(self, request: Request) -> Answer:
        """``GET /v1/models/{id}``: one model, or OpenAI's 404 ``model_not_found``."""
        name = request.path[len(MODEL_PREFIX) :]
        snapshot = self.gw.router.snapshot
        if name not in snapshot.services:
            raise errors.unknown_model(name, list(snapshot.services))
        return json_response(_model(name, snapshot))

    async def health(self, request: Request) -> Answer:
        return json_response({"status": "ok"})

    async def ready(self, request: Request) -> Answer:
        router = self.gw.router
        routable = {
            name: sum(not self.gw.health.is_ejected(r.replica_id) for r in router.routable(name))
            for name in router.snapshot.services
        }
        ok = any(routable.values())
        return json_response(
            {"status": "ready" if ok else "not ready", "services": routable},
            status=200 if ok else 503,
        )

    async def metrics(self, request: Request) -> Answer:
        body = generate_latest(self.gw.metrics.registry)
        return Response(body, content_type=CONTENT_TYPE_LATEST)


MODEL_PREFIX = "/v1/models/"
MODEL_PATH = MODEL_PREFIX + "{id}"
"""The one route with a parameter: ``GatewayApp`` sends every path under
``MODEL_PREFIX`` here."""


def _model(name: str, snapshot: Snapshot) -> dict[str, Any]:
    """One model as OpenAI lists it. ``created``: when the replicas of the service's
    revision started (its apply), 0 while none has started."""
    started = [r.started_at for r in snapshot.replicas if r.service == name and r.started_at]
    created = int(min(started)) if started else 0
    return {"id": name, "object": "model", "created": created, "owned_by": "llmfleet"}


def _failed_status(exc: BaseException) -> str | None:
    """The status a request that raised ``exc`` is counted and logged with: 499 for a
    client that left (its task cancelled, or its stream reset), None for an
    ``ApiError`` (counted where it is rendered), else 500."""
    if isinstance(exc, asyncio.CancelledError | ConnectionResetError):
        return str(errors.CLIENT_CLOSED)
    if isinstance(exc, errors.ApiError):
        return None
    return "500"


def _check_tools(service: str, spec: ServiceSpec, body: dict[str, Any]) -> None:
    """400 naming the field when tool calls are asked of an engine that cannot make them."""
    asked = next((f for f in TOOL_FIELDS if body.get(f)), None)
    if asked is not None:
        reason = why_no_tools(spec)
        if reason is not None:
            raise errors.no_tools(service, asked, reason)


def _parse_body(raw: bytes) -> Any:
    """The request's JSON value (400 if it is not JSON)."""
    try:
        return orjson.loads(raw)
    except ValueError as exc:
        raise errors.bad_request(f"the body is not valid JSON: {exc}", code="invalid_json") from exc


def _usage_of(data: bytes) -> dict[str, Any] | None:
    """The usage of a JSON answer, cached prompt tokens included (``with_cached_tokens``)."""
    try:
        answer = orjson.loads(data)
        usage = answer.get("usage")
    except (ValueError, AttributeError):
        return None
    return with_cached_tokens(usage, answer.get("timings")) if isinstance(usage, dict) else None
