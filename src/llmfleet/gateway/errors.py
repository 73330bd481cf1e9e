"""OpenAI-style error responses with their HTTP statuses.

Every error the gateway answers is ``{"error": {"message", "type", "code"}}``
(what the official clients parse into ``openai.APIStatusError``). ``ApiError``
is raised anywhere below the route handlers and rendered once, in ``app``.
"""

from __future__ import annotations

import json
import math

import orjson

from llmfleet.gateway.messages import Response


class ApiError(Exception):
    """An error answered to the client as OpenAI JSON with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str,
        code: str,
        retry_after_s: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.retry_after_s = retry_after_s
        self.param = param
        """the request field at fault (``messages[1].content``), as OpenAI names it."""

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "code": self.code, "param": self.param}
        return json.dumps({"error": error}).encode()

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}

    def response(self) -> Response:
        return Response(self.body(), status=self.status, headers=self.headers() or None)


def bad_request(
    message: str, *, code: str = "invalid_request", param: str | None = None
) -> ApiError:
    return ApiError(400, message, type_="invalid_request_error", code=code, param=param)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, type_="authentication_error", code="invalid_api_key")


def forbidden(message: str) -> ApiError:
    return ApiError(403, message, type_="permission_error", code="model_not_allowed")


def unknown_model(name: str, known: list[str]) -> ApiError:
    listed = ", ".join(sorted(known)) or "none"
    return ApiError(
        404,
        f"the model '{name}' does not exist; models served here: {listed}",
        type_="invalid_request_error",
        code="model_not_found",
    )


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body has {size} bytes; this service accepts at most {limit}",
        type_="invalid_request_error",
        code="request_too_large",
    )


def rate_limited(message: str, *, retry_after_s: float) -> ApiError:
    return ApiError(
        429,
        message,
        type_="rate_limit_error",
        code="rate_limit_exceeded",
        retry_after_s=retry_after_s,
    )


def queue_full(service: str, *, retry_after_s: float) -> ApiError:
    return ApiError(
        429,
        f"the service '{service}' is at capacity and its queue is full; retry later",
        type_="rate_limit_error",
        code="queue_full",
        retry_after_s=retry_after_s,
    )


def no_replica(service: str, *, waited_s: float, why: str | None = None) -> ApiError:
    """503; with ``why`` (no replica will come: they failed) it says so and what to do."""
    message = f"the service '{service}' has no ready replica (waited {waited_s:.1f} s)"
    if why is not None:
        message = (
            f"the service '{service}' has no ready replica: {why}. `llmfleet status` shows "
            f"its replicas and `llmfleet logs {service}` their output; fix the cause and "
            "apply again"
        )
    return ApiError(
        503,
        message,
        type_="service_unavailable",
        code="no_ready_replica",
        retry_after_s=5,
    )


def upstream_failed(service: str, detail: str) -> ApiError:
    return ApiError(
        503,
        f"every attempt for the service '{service}' failed: {detail}",
        type_="service_unavailable",
        code="upstream_failed",
        retry_after_s=1,
    )


def timed_out(service: str, detail: str) -> ApiError:
    return ApiError(
        504,
        f"the service '{service}' did not answer in time: {detail}",
        type_="timeout",
        code="upstream_timeout",
    )


def not_found(method: str, path: str) -> ApiError:
    return ApiError(
        404, f"no route {method} {path}", type_="invalid_request_error", code="not_found"
    )


def method_not_allowed(method: str, path: str) -> ApiError:
    return ApiError(
        405,
        f"{method} is not allowed on {path}",
        type_="invalid_request_error",
        code="method_not_allowed",
    )


def internal_error() -> ApiError:
    return ApiError(
        500, "the gateway failed on this request", type_="server_error", code="internal_error"
    )


NOT_SUPPORTED = 501
"""An engine's "not implemented": this engine, as configured, does not do what the
request asks (llama-server's embeddings without ``--embeddings``): the client's
request is wrong for this service, the replica is fine."""


def engine_words(body: bytes, *, limit: int = 300) -> str:
    """What an engine said in an error body, as one clean line of text.

    The ``message`` of an OpenAI error (llama-server, vLLM, the sim), a ``detail``
    (FastAPI), or else the body's text; control characters become spaces and the
    result is cut at ``limit`` characters, so no raw bytes reach a client or a log.
    """
    try:
        data = orjson.loads(body)
    except ValueError:
        data = body.decode("utf-8", "replace")
    if isinstance(data, dict):
        error = data.get("error")
        found = error.get("message") if isinstance(error, dict) else error
        data = found or data.get("message") or data.get("detail") or data
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    words = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


def engine_refused(service: str, status: int, body: bytes) -> ApiError:
    """The client's error for an engine's 4xx (or 501): the engine's words, in OpenAI
    form. A 501 becomes 400: the request asks this service for what it does not do."""
    words = engine_words(body) or "no reason given"
    if status == NOT_SUPPORTED:
        message = f"the service '{service}' does not support this request: {words}"
        return ApiError(400, message, type_="invalid_request_error", code="not_supported")
    return ApiError(
        status,
        f"the engine of the service '{service}' rejected the request ({status}): {words}",
        type_="invalid_request_error",
        code="engine_rejected",
    )


def no_embeddings(service: str, reason: str, serving: list[str]) -> ApiError:
    """400: embeddings asked of a service whose engine is not set up to serve them."""
    others = ", ".join(serving) or "none"
    return bad_request(
        f"the service '{service}' does not serve embeddings ({reason}); "
        f"services that serve embeddings: {others}",
        code="embeddings_not_served",
        param="model",
    )


def no_tools(service: str, field: str, reason: str) -> ApiError:
    """400: tool calls asked of a service whose engine cannot make them (rather than an
    answer in prose that silently ignores ``field``)."""
    return bad_request(
        f"'{field}' cannot be served by the service '{service}': {reason}; "
        f"send the request without '{field}', or to a service whose engine calls tools",
        code="tools_not_supported",
        param=field,
    )


CLIENT_CLOSED = 499
"""nginx's "client closed request": the client left before its answer was complete.
Not an error of the gateway's (kept out of the 5xx error rate), and not a success."""
