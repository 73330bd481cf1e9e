"""The sim's API key check, made to behave as llama-server's.

llama-server (``middleware_validate_api_key`` in its ``server-http.cpp``) answers
every path 401 unless the request carries its key in ``Authorization``
(``Bearer KEY``) or ``X-Api-Key``; only its health checks stay open. The sim
does the same, metrics, props and the fault switches included, so tests against
the sim exercise the keys the local agent gives its replicas the way the real
engine would: a probe or scrape that forgets the key fails here too
(``tests/engines/test_engine_keys.py`` holds both to the same table).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from llmfleet.engines.sim.generation import error_response

PUBLIC_PATHS = frozenset({"/health", "/v1/health"})
"""Paths llama-server 11434.0.0 answers without a key (some llama.cpp releases also
leave the model list open; this one does not, nor does llmfleet need it)."""


def presented_key(headers: Mapping[str, str]) -> str:
    """The key a request carries, as llama-server reads it ("" when none); pure."""
    value = headers.get("Authorization") or headers.get("X-Api-Key") or ""
    return value.removeprefix("Bearer ")


def key_accepted(expected: str, headers: Mapping[str, str]) -> bool:
    """Whether the request carries ``expected``; compared in constant time, so the
    answer's timing tells nothing about how much of a guess was right."""
    return hmac.compare_digest(presented_key(headers).encode(), expected.encode())


def key_middleware(expected: str) -> Middleware:
    """Refuse every request to a path outside ``PUBLIC_PATHS`` without ``expected``."""

    @web.middleware
    async def check_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or key_accepted(expected, request.headers):
            return await handler(request)
        return error_response(401, "Invalid API Key", "authentication_error")

    return check_key
