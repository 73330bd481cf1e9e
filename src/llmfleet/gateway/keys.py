"""API keys: who the caller is and which services it may use.

The gateway asks a ``KeyVerifier``; the state store keeps keys hashed, and
``StoreKeyVerifier`` caches its answers (a valid key, or the fact that a
secret is unknown) for ``ttl_s`` by the secret's SHA-256, so the database is
off the hot path and the cache never holds a secret in clear.

``peek`` answers from what a verifier knows without waiting (``LOOKUP``
otherwise): the server judges a request's key from its headers, before its body
is read, and only waits for a lookup when the body does not come in one read.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from llmfleet.gateway import errors


@dataclass(frozen=True)
class KeyInfo:
    """A valid key as the gateway needs it."""

    id: str
    name: str
    services: frozenset[str] = frozenset()
    """services it may call; empty means all."""
    rpm: int | None = None
    tpm: int | None = None

    def allows(self, service: str) -> bool:
        return not self.services or service in self.services


class Lookup(enum.Enum):
    """``KeyVerifier.peek`` cannot answer without ``verify`` (a store lookup)."""

    NEEDED = "needed"


LOOKUP = Lookup.NEEDED


class KeyVerifier(Protocol):
    async def verify(self, secret: str) -> KeyInfo | None:
        """The key for ``secret``, or None if it is unknown or revoked."""

    def peek(self, secret: str) -> KeyInfo | Lookup | None:
        """What ``verify`` would answer, if known without waiting; else ``LOOKUP``."""


class StaticKeyVerifier:
    """Keys held in memory (tests, benches)."""

    def __init__(self, keys: Mapping[str, KeyInfo]) -> None:
        self.keys = dict(keys)

    async def verify(self, secret: str) -> KeyInfo | None:
        return self.keys.get(secret)

    def peek(self, secret: str) -> KeyInfo | Lookup | None:
        return self.keys.get(secret)


class KeyStore(Protocol):
    def verify_key(self, secret: str) -> Any:
        """An ``ApiKey`` (id, name, services, rpm, tpm, revoked_at) or None."""


def key_info_from(record: Any) -> KeyInfo | None:
    """A store record as ``KeyInfo``; None if it is missing or revoked."""
    if record is None or getattr(record, "revoked_at", None) is not None:
        return None
    return KeyInfo(
        id=str(record.id),
        name=str(record.name),
        services=frozenset(getattr(record, "services", None) or ()),
        rpm=getattr(record, "rpm", None),
        tpm=getattr(record, "tpm", None),
    )


class StoreKeyVerifier:
    """Verifies against the state store in a thread; caches answers for ``ttl_s``."""

    def __init__(
        self,
        store: KeyStore,
        *,
        clock: Callable[[], float],
        ttl_s: float = 10.0,
        max_entries: int = 10_000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, KeyInfo | None]] = OrderedDict()

    def peek(self, secret: str) -> KeyInfo | Lookup | None:
        hit = self._cache.get(hashlib.sha256(secret.encode()).hexdigest())
        return hit[1] if hit is not None and hit[0] > self.clock() else LOOKUP

    async def verify(self, secret: str) -> KeyInfo | None:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > self.clock():
            return hit[1]
        info = key_info_from(await asyncio.to_thread(self.store.verify_key, secret))
        self._cache[digest] = (self.clock() + self.ttl_s, info)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return info


def secret_from(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer KEY`` (OpenAI) or ``api-key``."""
    return _secret(headers.get("Authorization", ""), headers.get("api-key"))


def secret_in(headers: Iterable[tuple[str, str]]) -> str | None:
    """``secret_from`` over the raw header pairs (the first of each name counts), for
    the server, before the request's header mapping exists."""
    auth: str | None = None
    api_key: str | None = None
    for name, value in headers:
        lower = name.lower()
        if lower == "authorization" and auth is None:
            auth = value
        elif lower == "api-key" and api_key is None:
            api_key = value
    return _secret(auth or "", api_key)


def _secret(auth: str, api_key: str | None) -> str | None:
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return api_key or None


FLEET_SECRET_PREFIX = "lf-"  # noqa: S105 - how llmfleet's own keys begin (state.keys)


async def refuse_out_of_scope(
    verifier: KeyVerifier | None, headers: Mapping[str, str], service: str
) -> KeyInfo | None:
    """403 for one of llmfleet's keys sent to a service outside its scope, even one that
    needs no key: an agent's key reaches its own models only. The key when it is valid
    (its use is counted); other keys (OpenAI clients send one whatever the service) are
    not looked up, as the service needs none."""
    secret = secret_from(headers)
    if verifier is None or secret is None or not secret.startswith(FLEET_SECRET_PREFIX):
        return None
    info = await verifier.verify(secret)
    if info is not None and not info.allows(service):
        raise errors.forbidden(f"the API key '{info.name}' may not use the service '{service}'")
    return info


async def authorize(
    verifier: KeyVerifier | None, headers: Mapping[str, str], service: str, *, required: bool
) -> KeyInfo | None:
    """The caller's key if the service needs one; 401 missing/wrong, 403 out of scope."""
    if not required:
        return None
    secret = secret_from(headers)
    if secret is None:
        raise errors.unauthorized(
            f"the service '{service}' needs an API key: send 'Authorization: Bearer <key>'"
        )
    info = await verifier.verify(secret) if verifier is not None else None
    if info is None:
        raise errors.unauthorized("the API key is not valid (unknown or revoked)")
    if not info.allows(service):
        raise errors.forbidden(f"the API key '{info.name}' may not use the service '{service}'")
    return info
