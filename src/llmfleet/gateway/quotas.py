"""Per-key request and token quotas: token buckets on the loop clock.

Requests per minute: a bucket of ``rpm`` that refills ``rpm/60`` per second;
each request takes one. Tokens per minute: a bucket of ``tpm`` that a request
may enter while the bucket is positive and that is charged the request's real
usage when it ends (it may go into debt, which later requests wait out). Both
answer 429 with a Retry-After of the time the bucket needs. Every answer to a key
with quotas carries their state in OpenAI's ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from llmfleet.gateway import errors
from llmfleet.gateway.keys import KeyInfo


@dataclass
class TokenBucket:
    capacity: float
    per_s: float
    level: float
    at: float

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.per_s)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 if it is now)."""
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / self.per_s


class Quotas:
    """The buckets of every key seen; state lives here, time comes from ``clock``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}

    def _bucket(self, table: dict[str, TokenBucket], key: str, per_minute: int) -> TokenBucket:
        bucket = table.get(key)
        now = self.clock()
        if bucket is None or bucket.capacity != per_minute:
            bucket = TokenBucket(per_minute, per_minute / 60.0, float(per_minute), now)
            table[key] = bucket
        bucket.refill(now)
        return bucket

    def admit(self, key: KeyInfo) -> None:
        """Take one request from the key's quotas, or raise 429."""
        if key.tpm is not None:
            tokens = self._bucket(self._tokens, key.id, key.tpm)
            if tokens.level < 1:
                raise errors.rate_limited(
                    f"the API key '{key.name}' used its {key.tpm} tokens per minute",
                    retry_after_s=tokens.wait_for(1),
                )
        if key.rpm is not None:
            requests = self._bucket(self._requests, key.id, key.rpm)
            if requests.level < 1:
                raise errors.rate_limited(
                    f"the API key '{key.name}' made its {key.rpm} requests per minute",
                    retry_after_s=requests.wait_for(1),
                )
            requests.level -= 1

    def headers(self, key: KeyInfo) -> dict[str, str] | None:
        """OpenAI's ``x-ratelimit-*`` headers of ``key`` now: limit, what is left and the
        time until the bucket is full again, for requests and for tokens (None for a key
        without quotas)."""
        out: dict[str, str] = {}
        for kind, table, per_minute in (
            ("requests", self._requests, key.rpm),
            ("tokens", self._tokens, key.tpm),
        ):
            if per_minute is None:
                continue
            bucket = self._bucket(table, key.id, per_minute)
            out[f"x-ratelimit-limit-{kind}"] = str(per_minute)
            out[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
            out[f"x-ratelimit-reset-{kind}"] = duration_text(bucket.wait_for(bucket.capacity))
        return out or None

    def charge(self, key: KeyInfo, tokens: int) -> None:
        """Charge a finished request's tokens to the key's tokens-per-minute bucket."""
        if key.tpm is not None and tokens > 0:
            self._bucket(self._tokens, key.id, key.tpm).level -= tokens


def duration_text(seconds: float) -> str:
    """A wait as OpenAI's reset headers spell it: ``20ms``, ``1.5s``, ``6m0s``; pure."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"
