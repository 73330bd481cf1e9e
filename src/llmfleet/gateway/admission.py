"""The route table and admission control: who may send where, and who waits.

``Router`` holds the current snapshot, the gateway's own in-flight count per
replica and one bounded FIFO queue per service. ``acquire`` returns a
``Lease`` on a replica with room (picked by ``balancing.pick_replica``), or
queues the request until a lease is released or the replica set changes:

* queue already holding ``admission.queue_size`` requests: 429 at once;
* no slot within ``admission.max_wait_s``: 429 with Retry-After;
* no routable replica at all within ``retries.wait_for_replica_s``: 503; at once
  when the snapshot says none will come (``Snapshot.why_unservable``: every replica
  crash-loops or failed), with why.

Prefix affinity on an engine whose slots keep separate caches (llama-server)
also holds a request back while another of its prefix is in flight on the
prefix's home, for up to ``routing.prefix_wait_s``: a second slot there would
prefill the whole prefix again (20 s for 1,500 tokens on one CPU thread, with
every request in that replica's batch waiting), where the first request ends in
a second or so. While any request is held, every release wakes the whole queue.

Picking at the moment a slot frees (late binding) is what lets least-load and
prefix affinity see the real loads. Leases are released in ``finally`` blocks,
so the counts cannot leak on errors.

Above ``EXACT_PICK_MAX`` routable replicas, least-load and round-robin look at a
few replicas per request instead of all (``_pick_sampled``): least-load takes
the less loaded of ``SAMPLE_SIZE`` drawn at random that may take the request
(power of two choices, Mitzenmacher), round-robin the first such at or after its
cursor. A draw that finds too few falls back to the exact pick, so a replica
with room is never missed. Prefix affinity never samples (its load bound and its
homes are defined over every replica), but its common case, a prefix whose home
holds fewer than ``routing.spill_after`` requests, needs no other replica: the home
takes it whatever the bound, so ``_pick_home`` returns it without building every
replica's load, at any replica count, and picks exactly as the full pick does.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from llmfleet.backends.base import ReplicaStatus
from llmfleet.gateway import errors
from llmfleet.gateway.balancing import PrefixHomes, ReplicaLoad, pick_replica, prefix_digest
from llmfleet.gateway.replicas import Snapshot
from llmfleet.spec.model import EngineKind, RoutingStrategy, ServiceSpec

EXACT_PICK_MAX = 32
"""Most routable replicas for which least-load and round-robin compare every one (the
README's Routing section); above it they sample. Kept for speed: it buys the requests/s
at 1,000 endpoints against 10 of bench/gateway_endpoints.py (issue 16, figure 2)."""
SAMPLE_SIZE = 2
"""replicas a sampled least-load pick compares: two choices already cut the most
loaded replica from about log n / log log n above the mean to log log n."""
SAMPLE_TRIES = 8
"""draws before a sampled pick gives up and picks exactly (most replicas full,
ejected or avoided)."""

SLOT_CACHE_PREFIX_WAIT_S = 10.0
"""``routing.prefix_wait_s`` when the spec leaves it out and the engine keeps a cache per slot."""


def prefix_wait_s(spec: ServiceSpec) -> float:
    """How long a request may wait for its prefix's home to finish another of its prefix."""
    if spec.routing.strategy != RoutingStrategy.PREFIX_AFFINITY:
        return 0.0
    if spec.routing.prefix_wait_s is not None:
        return spec.routing.prefix_wait_s
    return SLOT_CACHE_PREFIX_WAIT_S if spec.engine.kind == EngineKind.LLAMACPP else 0.0


@dataclass
class Lease:
    """One request's hold on a replica; ``release`` exactly once."""

    replica: ReplicaStatus
    _router: Router
    prefix: bytes | None = None
    """the digest of the request's prefix, when prefix affinity counts it in flight."""
    _released: bool = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._router.release(self.replica, self.prefix)


@dataclass
class _Queue:
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    cursor: int = 0
    homes: PrefixHomes = field(default_factory=PrefixHomes)
    busy: dict[tuple[str, bytes], int] = field(default_factory=dict)
    """(replica, prefix digest) -> requests in flight, for ``prefix_wait_s``."""
    held: int = 0
    """requests waiting for their prefix's home (every release then wakes the queue)."""


class Router:
    """Route table plus per-service queues. All methods run on the event loop."""

    def __init__(
        self,
        *,
        is_ejected: Callable[[str], bool],
        engine_waiting: Mapping[str, int],
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.snapshot = Snapshot(services={}, replicas=[], generation=-1)
        self.in_flight: dict[str, int] = {}
        self.is_ejected = is_ejected
        self.engine_waiting = engine_waiting
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - spreads load, guards no secret
        """draws sampled picks (``EXACT_PICK_MAX``); a seeded one makes them repeatable."""
        self._routable: dict[str, list[ReplicaStatus]] = {}
        self._routable_by_id: dict[str, dict[str, ReplicaStatus]] = {}
        self._queues: dict[str, _Queue] = {}

    def update(self, snapshot: Snapshot) -> None:
        """Swap in a new snapshot; waiting requests look again."""
        self.snapshot = snapshot
        self._routable = {name: snapshot.routable(name) for name in snapshot.services}
        self._routable_by_id = {
            name: {r.replica_id: r for r in replicas} for name, replicas in self._routable.items()
        }
        self.wake_all()

    def service(self, name: str) -> ServiceSpec | None:
        return self.snapshot.services.get(name)

    def routable(self, service: str) -> list[ReplicaStatus]:
        return self._routable.get(service, [])

    def queue_depth(self, service: str) -> int:
        queue = self._queues.get(service)
        return len(queue.waiters) if queue else 0

    async def acquire(
        self, service: str, *, prefix_key: bytes | None = None, avoid: Collection[str] = ()
    ) -> Lease:
        """A lease on the best replica of ``service`` with room, waiting if needed."""
        spec = self.snapshot.services[service]
        queue = self._queues.get(service)
        if queue is None:  # not setdefault: that would build a queue on every request
            queue = self._queues[service] = _Queue()
        start = self.clock()
        # a hold takes at most half of the request's admission wait, so a held request is
        # still placed (not refused with 429) when its home stays busy
        hold_s = min(prefix_wait_s(spec), spec.admission.max_wait_s / 2)
        hold_until = start + hold_s if prefix_key is not None else start
        while True:
            spec = self.snapshot.services.get(service, spec)
            hold = self.clock() < hold_until
            replica, any_routable, digest = self._try_pick(service, spec, prefix_key, avoid, hold)
            if replica is not None:
                return self._lease(queue, replica, digest)
            held = digest is not None  # held back for its prefix, not out of room
            queue.held += held
            try:
                await self._wait(
                    service,
                    spec,
                    queue,
                    start=start,
                    any_routable=any_routable,
                    until=hold_until if held else None,
                )
            finally:
                queue.held -= held

    def try_acquire(
        self, service: str, *, prefix_key: bytes | None = None, avoid: Collection[str] = ()
    ) -> Lease | None:
        """What ``acquire`` returns when it need not wait, else None (and nothing changes
        but the round-robin cursor); no coroutine, for the common case."""
        spec = self.snapshot.services[service]
        queue = self._queues.get(service)
        if queue is None:
            queue = self._queues[service] = _Queue()
        hold = prefix_key is not None and prefix_wait_s(spec) > 0
        replica, _, digest = self._try_pick(service, spec, prefix_key, avoid, hold)
        return None if replica is None else self._lease(queue, replica, digest)

    def _lease(self, queue: _Queue, replica: ReplicaStatus, digest: bytes | None) -> Lease:
        rid = replica.replica_id
        self.in_flight[rid] = self.in_flight.get(rid, 0) + 1
        if digest is not None:
            queue.busy[(rid, digest)] = queue.busy.get((rid, digest), 0) + 1
        return Lease(replica, self, digest)

    def _try_pick(
        self,
        service: str,
        spec: ServiceSpec,
        prefix_key: bytes | None,
        avoid: Collection[str],
        hold: bool = False,
    ) -> tuple[ReplicaStatus | None, bool, bytes | None]:
        """(the replica, whether any is routable, the prefix digest to count in flight).

        Prefix affinity counts its requests in flight per home when the service holds
        requests for their prefix (``hold``: a held request gets no replica and the digest,
        so its caller knows it was held rather than out of room)."""
        sampled = self._pick_sampled(service, spec, avoid)
        if sampled is not None:
            return sampled, True, None
        at_home = self._pick_home(service, spec, prefix_key, avoid, hold)
        if at_home is not None:
            return at_home[0], True, at_home[1]
        healthy = [r for r in self.routable(service) if not self.is_ejected(r.replica_id)]
        preferred = [r for r in healthy if r.replica_id not in avoid] or healthy
        if not preferred:
            return None, False, None
        capacity = spec.admission.max_in_flight_per_replica or spec.slots
        queue = self._queues[service]
        queue.cursor += 1
        if len(preferred) == 1:
            # what every strategy picks from one candidate: it, if it has room
            only = preferred[0]
            return (only if self.in_flight.get(only.replica_id, 0) < capacity else None), True, None
        by_id = {r.replica_id: r for r in preferred}
        loads = {
            rid: ReplicaLoad(
                in_flight=self.in_flight.get(rid, 0),
                engine_waiting=self.engine_waiting.get(rid, 0),
                capacity=capacity,
            )
            for rid in by_id
        }
        affinity = spec.routing.strategy == RoutingStrategy.PREFIX_AFFINITY and prefix_key
        home = queue.homes.home(prefix_key) if affinity and prefix_key else None
        digest = prefix_digest(prefix_key) if affinity and prefix_key and hold else None
        if digest is not None and home in by_id and queue.busy.get((home, digest)):
            return None, True, digest  # its home is busy with this prefix: wait for it
        picked = pick_replica(
            spec.routing.strategy,
            list(by_id),
            loads,
            cursor=queue.cursor,
            prefix_key=prefix_key,
            load_factor=spec.routing.load_factor,
            spill_after=spec.routing.spill_after,
            home=home,
            homed=queue.homes.counts,
        )
        if picked is None:
            return None, True, None
        if affinity and prefix_key and (home is None or home not in by_id):
            queue.homes.place(prefix_key, picked)  # a new home; a spill leaves the old one
        return by_id[picked], True, digest

    def _pick_sampled(
        self, service: str, spec: ServiceSpec, avoid: Collection[str]
    ) -> ReplicaStatus | None:
        """Least-load or round-robin over many replicas by looking at a few (the module
        docstring); None when the pick must be exact: few replicas, prefix affinity, or
        the draws found too few that may take the request."""
        routable = self.routable(service)
        strategy = spec.routing.strategy
        if len(routable) <= EXACT_PICK_MAX or strategy == RoutingStrategy.PREFIX_AFFINITY:
            return None
        capacity = spec.admission.max_in_flight_per_replica or spec.slots
        queue = self._queues[service]
        queue.cursor += 1

        def usable(replica: ReplicaStatus) -> bool:
            rid = replica.replica_id
            return (
                self.in_flight.get(rid, 0) < capacity
                and rid not in avoid
                and not self.is_ejected(rid)
            )

        count = len(routable)
        if strategy == RoutingStrategy.ROUND_ROBIN:
            walk = (routable[(queue.cursor + step) % count] for step in range(SAMPLE_TRIES))
            return next(filter(usable, walk), None)
        drawn: dict[str, ReplicaStatus] = {}
        for _ in range(SAMPLE_TRIES):
            replica = routable[self.rng.randrange(count)]
            if replica.replica_id not in drawn and usable(replica):
                drawn[replica.replica_id] = replica
                if len(drawn) == SAMPLE_SIZE:
                    break
        if len(drawn) < SAMPLE_SIZE:
            return None

        def score(replica: ReplicaStatus) -> int:  # ReplicaLoad.score
            rid = replica.replica_id
            return self.in_flight.get(rid, 0) + self.engine_waiting.get(rid, 0)

        return min(drawn.values(), key=score)  # ties: the first drawn, itself at random

    def _pick_home(
        self,
        service: str,
        spec: ServiceSpec,
        prefix_key: bytes | None,
        avoid: Collection[str],
        hold: bool,
    ) -> tuple[ReplicaStatus, bytes | None] | None:
        """(the prefix's home, the digest to count in flight) when the full pick would
        return that home without weighing the others, looking at it alone (the module
        docstring); None when the full pick must decide. Kept for speed: it buys the
        prefix-affinity row of bench/gateway_pick.py, a pick's CPU time at 1,000 replicas
        against 10 held to least-load's goal (within 2x), which building every replica's
        load on every pick missed by far."""
        if spec.routing.strategy != RoutingStrategy.PREFIX_AFFINITY or not prefix_key:
            return None
        queue = self._queues[service]
        home = queue.homes.home(prefix_key)
        if home is None or home in avoid:
            return None  # a new prefix, or its home is preferred only if every one is avoided
        replica = self._routable_by_id.get(service, {}).get(home)
        if replica is None or self.is_ejected(home):
            return None
        capacity = spec.admission.max_in_flight_per_replica or spec.slots
        if self.in_flight.get(home, 0) >= min(capacity, spec.routing.spill_after):
            return None  # full, or past spill_after: the load bound decides
        digest = prefix_digest(prefix_key) if hold else None
        if digest is not None and (
            queue.busy.get((home, digest)) or not self._others_preferred(service, home, avoid)
        ):
            return None  # held for its prefix; or the only one preferred, counted without digest
        queue.cursor += 1
        return replica, digest

    def _others_preferred(self, service: str, home: str, avoid: Collection[str]) -> bool:
        """Whether a replica besides ``home`` may be preferred; usually the first says so."""
        return any(
            r.replica_id != home and r.replica_id not in avoid and not self.is_ejected(r.replica_id)
            for r in self.routable(service)
        )

    async def _wait(
        self,
        service: str,
        spec: ServiceSpec,
        queue: _Queue,
        *,
        start: float,
        any_routable: bool,
        until: float | None = None,
    ) -> None:
        if len(queue.waiters) >= spec.admission.queue_size:
            raise errors.queue_full(service, retry_after_s=1)
        if not any_routable and (why := self.snapshot.why_unservable(service)):
            raise errors.no_replica(service, waited_s=self.clock() - start, why=why)
        limit = spec.admission.max_wait_s if any_routable else spec.retries.wait_for_replica_s
        remaining = start + limit - self.clock()
        if remaining <= 0:
            if any_routable:
                raise errors.rate_limited(
                    f"the service '{service}' had no free slot within {limit:.1f} s; retry later",
                    retry_after_s=1,
                )
            raise errors.no_replica(service, waited_s=self.clock() - start)
        if until is not None:  # held for its prefix: look again when the hold ends
            remaining = min(remaining, max(until - self.clock(), 0.0))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.waiters.append(waiter)
        try:
            async with asyncio.timeout(remaining):
                await waiter
        except TimeoutError:
            pass
        finally:
            if not waiter.done():
                waiter.cancel()
            if waiter in queue.waiters:
                queue.waiters.remove(waiter)

    def release(self, replica: ReplicaStatus, prefix: bytes | None = None) -> None:
        count = self.in_flight.get(replica.replica_id, 0) - 1
        if count > 0:
            self.in_flight[replica.replica_id] = count
        else:
            self.in_flight.pop(replica.replica_id, None)
        queue = self._queues.get(replica.service)
        if queue is not None and prefix is not None:
            key = (replica.replica_id, prefix)
            left = queue.busy.get(key, 0) - 1
            if left > 0:
                queue.busy[key] = left
            else:
                queue.busy.pop(key, None)
        if queue is not None and queue.held:
            self._wake_queue(queue)  # a held request may be the one this release frees
        else:
            self._wake_one(replica.service)

    def _wake_one(self, service: str) -> None:
        queue = self._queues.get(service)
        while queue and queue.waiters:
            waiter = queue.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def wake_all(self) -> None:
        for queue in self._queues.values():
            self._wake_queue(queue)

    @staticmethod
    def _wake_queue(queue: _Queue) -> None:
        while queue.waiters:
            waiter = queue.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
