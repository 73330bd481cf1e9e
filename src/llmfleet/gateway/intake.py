"""What a client may take of the gateway before its request is answered.

A hostile client costs the gateway time (a connection held open by a request
that never ends), connections, and memory (a body read whole before anything
was checked). ``Limits`` bounds each; the server enforces them:

* the request line and headers must arrive within ``header_timeout_s`` of their
  first byte, and a body must keep coming (``body_idle_s``) and end within
  ``body_timeout_s``: 408 and the connection closes (slowloris);
* at most ``connections_per_address`` connections from one address: the next
  one is answered 429 and closed at once;
* the bodies of all requests in flight together hold at most ``bodies_bytes``
  (``BodyBudget``): a request whose declared body does not fit is answered 503
  with Retry-After before its body is read.

The service a request is for is named inside its body, so what can be judged
before the body is judged from the headers (``check_head``, pure): a body larger
than any service this caller may use accepts is 413, and a caller who may use no
service at all (no key, or a key that is unknown, where every service needs one)
is 401, both before a byte of the body is read.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from llmfleet.gateway import errors
from llmfleet.gateway.errors import ApiError
from llmfleet.gateway.keys import KeyInfo
from llmfleet.spec.model import ServiceSpec

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may take of the gateway (see the module docstring)."""

    header_timeout_s: float = 10.0
    """the request line and headers must be in this long after their first byte."""
    body_idle_s: float = 10.0
    """a body that makes no progress for this long is dropped."""
    body_timeout_s: float = 120.0
    """a body must be complete this long after the headers (4 MiB at 35 kB/s)."""
    connections_per_address: int = 256
    """open connections from one client address; 0: no limit. Loopback counts too:
    behind a proxy on this machine raise it, do not turn it off."""
    bodies_bytes: int = 128 * MiB
    """request bodies held at once by the whole gateway; one larger body is let in
    alone, when nothing else is held."""


@dataclass(slots=True)
class ReadClock:
    """When a request being read is late; pure (the server passes the loop's time).

    The head has ``header_timeout_s`` from its first byte, however it trickles in;
    then the body must make progress every ``body_idle_s`` and end within
    ``body_timeout_s`` of the head."""

    limits: Limits
    started_at: float
    """when the head's first byte came (the read it came in)."""
    body_at: float | None = None
    """when the head was complete; None before."""
    progress_at: float = 0.0
    """when body bytes last came."""

    def saw(self, now: float, *, head_done: bool) -> None:
        """Bytes of the request arrived at ``now``."""
        if head_done:
            if self.body_at is None:
                self.body_at = now
            self.progress_at = now

    def due(self) -> float:
        """When the request is late if nothing more comes."""
        limits = self.limits
        if self.body_at is None:
            return self.started_at + limits.header_timeout_s
        return min(self.progress_at + limits.body_idle_s, self.body_at + limits.body_timeout_s)

    def late(self, now: float) -> str | None:
        """Why the request is late at ``now`` (the 408's message); None while in time."""
        limits = self.limits
        if now < self.due():
            return None
        if self.body_at is None:
            return (
                f"the request's line and headers did not arrive within "
                f"{limits.header_timeout_s:g} s of their first byte"
            )
        if now >= self.body_at + limits.body_timeout_s:
            return f"the request body was not complete within {limits.body_timeout_s:g} s"
        return f"the request body made no progress for {limits.body_idle_s:g} s"


@dataclass(frozen=True, slots=True)
class Head:
    """A request as far as its headers: what ``check_head`` may judge."""

    method: str
    path: str
    headers: Sequence[tuple[str, str]]
    length: int | None
    """Content-Length; None for a chunked body (its size is known at its end)."""


class KeyState(enum.Enum):
    """Where the caller's key stands when it is not (yet) a ``KeyInfo``."""

    MISSING = "missing"
    INVALID = "invalid"
    """unknown or revoked."""
    UNVERIFIED = "unverified"
    """sent, but not yet looked up: it may be valid for any service that needs one."""


@dataclass(frozen=True, slots=True)
class Deferred:
    """The head's verdict waits on ``ready`` (a key being looked up); ask again after.
    Until then ``limit`` bounds the body."""

    limit: int
    ready: Callable[[], Awaitable[object]]


Verdict = int | ApiError | Deferred | None
"""What the server is told about a head: the largest body to read, the answer to give
now, a verdict to wait for, or None (nothing to say: the server's own limit holds)."""

HeadCheck = Callable[[Head], Verdict]


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """The body limits of the services, split by whether they need a key; computed once
    per route table."""

    open: Mapping[str, int]
    """services anyone may call -> max_body_bytes."""
    keyed: Mapping[str, int]
    """services that need a key -> max_body_bytes."""

    @classmethod
    def of(cls, services: Mapping[str, ServiceSpec]) -> ServiceLimits:
        return cls(
            open={
                n: s.admission.max_body_bytes for n, s in services.items() if not s.auth.required
            },
            keyed={n: s.admission.max_body_bytes for n, s in services.items() if s.auth.required},
        )


def check_head(
    limits: ServiceLimits, *, length: int | None, key: KeyInfo | KeyState
) -> int | ApiError:
    """The largest body this caller could send to a service it may use, or the error
    that its headers already earn; pure.

    401/403 only where the caller may use no service at all: a request without a key
    may still be for a service that needs none."""
    reach = max(limits.open.values(), default=0)
    if isinstance(key, KeyInfo):
        reach = max(reach, max((v for n, v in limits.keyed.items() if key.allows(n)), default=0))
    elif key is KeyState.UNVERIFIED:
        reach = max(reach, max(limits.keyed.values(), default=0))
    if reach == 0:
        return _no_service_for(key)
    if length is not None and length > reach:
        return ApiError(
            413,
            f"the request body has {length} bytes; no service this request may use"
            f" accepts more than {reach}",
            type_="invalid_request_error",
            code="request_too_large",
        )
    return reach


def _no_service_for(key: KeyInfo | KeyState) -> ApiError:
    if isinstance(key, KeyInfo):
        return errors.forbidden(f"the API key '{key.name}' may not use any service served here")
    if key is KeyState.MISSING:
        return errors.unauthorized(
            "every service here needs an API key: send 'Authorization: Bearer <key>'"
        )
    return errors.unauthorized("the API key is not valid (unknown or revoked)")


class BodyBudget:
    """The bytes of request bodies the gateway holds at once, across all connections.

    A connection ``take``s a body's size before reading it and ``give``s it back once
    the request is answered (or the connection is gone). One body larger than the
    whole budget is still let in when nothing else is held, so a service's own limit,
    not this one, decides what is too large."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used and self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


def request_timeout(detail: str) -> ApiError:
    return ApiError(408, detail, type_="invalid_request_error", code="request_timeout")


def too_many_connections(address: str, limit: int) -> ApiError:
    return ApiError(
        429,
        f"{address} has {limit} connections open to the gateway already, its limit;"
        " reuse connections (keep-alive) or close some",
        type_="rate_limit_error",
        code="too_many_connections",
        retry_after_s=1,
    )


def bodies_full(budget: BodyBudget) -> ApiError:
    return ApiError(
        503,
        f"the gateway holds {budget.used} bytes of request bodies, near its limit of"
        f" {budget.limit}; retry shortly",
        type_="service_unavailable",
        code="gateway_busy",
        retry_after_s=1,
    )
