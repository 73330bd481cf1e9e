"""Picking a replica for one request; pure, but for ``PrefixHomes``.

``pick_replica`` sees only plain values: the candidate replica ids, each one's
load, the service's strategy and (for prefix affinity) a key of the prompt's
prefix and where it went before. It never blocks and never mutates; the route
table around it counts leases, keeps the ``PrefixHomes`` it reads, and calls it
again when a slot frees.

Strategies:

* least-load: fewest requests in flight through the gateway plus the engine's
  own waiting queue (which also counts requests from other clients); ties go
  to the replica after the round-robin cursor so equal replicas share work.
* round-robin: the cursor modulo the replicas that have room.
* prefix-affinity: bounded loads (Mirrokni et al., "Consistent hashing with
  bounded loads") over a remembered placement: a prefix goes to the replica it
  went to before (its home: the engine's cache holds it) while that one's load
  stays within ``ceil(c * (total + 1) / n)`` or under ``spill_after``, so one
  hot prefix spills instead of swamping a replica; a new prefix gets the replica that is home to the
  fewest, so the engines' caches split the prefixes evenly. Rendezvous ranking
  (``hash(key, replica)``) orders the spills and breaks ties: with nothing
  remembered (a restarted gateway) every prefix goes where it hashes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmfleet.spec.model import RoutingStrategy


@dataclass(frozen=True)
class ReplicaLoad:
    """What the gateway knows of one replica's load."""

    in_flight: int = 0
    """requests the gateway has sent there and not finished."""
    engine_waiting: int = 0
    """the engine's own queue (its metrics), refreshed by the prober."""
    capacity: int = 1
    """most requests the gateway sends there at once."""

    @property
    def has_room(self) -> bool:
        return self.in_flight < self.capacity

    @property
    def score(self) -> int:
        return self.in_flight + self.engine_waiting


_UNKNOWN = ReplicaLoad()
"""The load of a replica the caller gave none for."""


def pick_replica(
    strategy: RoutingStrategy,
    candidates: Sequence[str],
    loads: Mapping[str, ReplicaLoad],
    *,
    cursor: int = 0,
    prefix_key: bytes | None = None,
    load_factor: float = 1.25,
    spill_after: int = 1,
    home: str | None = None,
    homed: Mapping[str, int] | None = None,
) -> str | None:
    """The replica for the next request, or None when none has room; pure. ``home`` and
    ``homed``: prefix affinity's memory (``PrefixHomes``)."""
    open_ = [c for c in candidates if loads.get(c, _UNKNOWN).has_room]
    if not open_:
        return None
    if strategy == RoutingStrategy.ROUND_ROBIN:
        return open_[cursor % len(open_)]
    if strategy == RoutingStrategy.PREFIX_AFFINITY and prefix_key is not None:
        return pick_bounded_affinity(
            candidates,
            loads,
            prefix_key,
            load_factor=load_factor,
            spill_after=spill_after,
            home=home,
            homed=homed,
        )
    return pick_least_load(open_, loads, cursor=cursor)


def pick_least_load(
    candidates: Sequence[str], loads: Mapping[str, ReplicaLoad], *, cursor: int = 0
) -> str:
    """The lowest score; among equals the first at or after the cursor; pure."""
    count = len(candidates)
    rotated = [candidates[(cursor + i) % count] for i in range(count)]
    return min(rotated, key=lambda c: loads.get(c, _UNKNOWN).score)


def load_bound(total_in_flight: int, replicas: int, load_factor: float) -> int:
    """Most in-flight requests one replica may hold after this one is placed; pure."""
    return max(1, math.ceil(load_factor * (total_in_flight + 1) / replicas))


def rank_replicas(candidates: Sequence[str], prefix_key: bytes) -> list[str]:
    """Candidates in rendezvous order for ``prefix_key`` (highest hash first); pure."""

    def weight(replica: str) -> bytes:
        return hashlib.blake2b(prefix_key + b"\x1f" + replica.encode(), digest_size=8).digest()

    return sorted(candidates, key=weight, reverse=True)


def pick_bounded_affinity(
    candidates: Sequence[str],
    loads: Mapping[str, ReplicaLoad],
    prefix_key: bytes,
    *,
    load_factor: float,
    spill_after: int = 1,
    home: str | None = None,
    homed: Mapping[str, int] | None = None,
) -> str | None:
    """The replica for a prefix: its home, else a new home, else a spill; pure.

    ``home`` is where the gateway last placed this prefix (that engine's cache
    holds it) and ``homed`` how many remembered prefixes each replica is home to.
    A prefix with a home goes there while the home is within the load bound; past
    it, to the next replica in rendezvous order within the bound (so a hot prefix
    spills to the same second cache), else the least loaded. A new prefix, or one
    whose home left, goes to the replica home to the fewest prefixes (rendezvous
    order among equals): hashing alone splits 8 prefixes over 2 replicas 4/4 only
    about one time in four, and the replica with more prefixes than its cache
    holds misses on every one of them.

    The home also keeps its prefix while it holds fewer than ``spill_after``
    requests, past the bound: at low load the bound is a request or two, and a
    spill costs a prefill of the whole prefix on another replica (seconds for a
    long system prompt) and pushes another prefix out of that one's cache, where
    waiting for a busy home costs a share of its batch.
    """
    total = sum(loads.get(c, _UNKNOWN).in_flight for c in candidates)
    bound = load_bound(total, len(candidates), load_factor)

    def fits(replica: str) -> bool:
        load = loads.get(replica, _UNKNOWN)
        return load.has_room and load.in_flight + 1 <= bound

    if home is not None and home in candidates:
        load = loads.get(home, _UNKNOWN)
        if load.has_room and (load.in_flight < spill_after or fits(home)):
            return home  # before ranking: the common case need not hash every replica
        ranked = [r for r in rank_replicas(candidates, prefix_key) if r != home]
    else:
        counts = homed or {}
        ranked = rank_replicas(candidates, prefix_key)
        ranked.sort(key=lambda replica: counts.get(replica, 0))  # stable: rank breaks ties
    for replica in ranked:
        if fits(replica):
            return replica
    open_ = [c for c in candidates if loads.get(c, _UNKNOWN).has_room]
    return pick_least_load(open_, loads) if open_ else None


class PrefixHomes:
    """Where the gateway last placed each recent prefix, per replica counted.

    The one piece of routing memory: ``pick_bounded_affinity`` stays pure and is
    given ``home(key)`` and ``counts``. The oldest keys are forgotten past
    ``size`` (an engine's cache has long evicted them too).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._homes: dict[bytes, str] = {}  # insertion order: oldest first
        self.counts: dict[str, int] = {}

    def home(self, key: bytes) -> str | None:
        return self._homes.get(prefix_digest(key))

    def place(self, key: bytes, replica: str) -> None:
        """Record that ``key`` was sent to ``replica`` (its new home if it had another)."""
        key = prefix_digest(key)
        old = self._homes.pop(key, None)
        if old is not None:
            self.counts[old] -= 1
        self._homes[key] = replica  # re-inserted: now the newest
        self.counts[replica] = self.counts.get(replica, 0) + 1
        if len(self._homes) > self.size:
            oldest = next(iter(self._homes))
            self.counts[self._homes.pop(oldest)] -= 1


def prefix_digest(key: bytes) -> bytes:
    """What ``PrefixHomes`` keeps of a key: 16 bytes instead of up to ``prefix_chars``."""
    return hashlib.blake2b(key, digest_size=16).digest()


def prefix_key_of(body: Mapping[str, object], prefix_chars: int) -> bytes | None:
    """The affinity key of a chat or completion body, or None if it has no text; pure.

    For chat it is the text up to and including the first user message, cut at
    ``prefix_chars``: every turn of one conversation shares it (so a
    conversation stays where its cache is), and conversations that share a
    system prompt of at least ``prefix_chars`` characters share it too.
    """
    messages = body.get("messages")
    if isinstance(messages, list):
        parts = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            parts.append(f"{message.get('role')}\x1f{message.get('content')}\x1e")
            if message.get("role") == "user":
                break
        text = "".join(parts)
    else:
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else ""
    if not text:
        return None
    return text[:prefix_chars].encode("utf-8", "surrogatepass")
