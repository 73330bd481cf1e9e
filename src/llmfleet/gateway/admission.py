"""The route table and admission control: who may send where, and who waits.

``Router`` holds the current snapshot, the gateway's own in-flight count per
replica and one bounded FIFO queue per service. ``acquire`` returns a
``Lease`` on a replica with room (picked by ``balancing.pick_replica``), or
queues the request until a lease is released or the replica set changes:

* queue already holding ``admission.queue_size`` requests: 429 at once;
* no slot within ``admission.max_wait_s``: 429 with Retry-After;
* no routable replica at all within ``retries.wait_for_replica_s``: 503.

Picking at the moment a slot frees (late binding) is what lets least-load and
prefix affinity see the real loads. Leases are released in ``finally`` blocks,
so the counts cannot leak on errors.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from llmfleet.backends.base import ReplicaStatus
from llmfleet.gateway import errors
from llmfleet.gateway.balancing import PrefixHomes, ReplicaLoad, pick_replica
from llmfleet.gateway.replicas import Snapshot
from llmfleet.spec.model import RoutingStrategy, ServiceSpec


@dataclass
class Lease:
    """One request's hold on a replica; ``release`` exactly once."""

    replica: ReplicaStatus
    _router: Router
    _released: bool = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._router.release(self.replica)


@dataclass
class _Queue:
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    cursor: int = 0
    homes: PrefixHomes = field(default_factory=PrefixHomes)


class Router:
    """Route table plus per-service queues. All methods run on the event loop."""

    def __init__(
        self,
        *,
        is_ejected: Callable[[str], bool],
        engine_waiting: Mapping[str, int],
        clock: Callable[[], float],
    ) -> None:
        self.snapshot = Snapshot(services={}, replicas=[], generation=-1)
        self.in_flight: dict[str, int] = {}
        self.is_ejected = is_ejected
        self.engine_waiting = engine_waiting
        self.clock = clock
        self._routable: dict[str, list[ReplicaStatus]] = {}
        self._queues: dict[str, _Queue] = {}

    def update(self, snapshot: Snapshot) -> None:
        """Swap in a new snapshot; waiting requests look again."""
        self.snapshot = snapshot
        self._routable = {name: snapshot.routable(name) for name in snapshot.services}
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
        while True:
            spec = self.snapshot.services.get(service, spec)
            replica, any_routable = self._try_pick(service, spec, prefix_key, avoid)
            if replica is not None:
                return self._lease(replica)
            await self._wait(service, spec, queue, start=start, any_routable=any_routable)

    def try_acquire(
        self, service: str, *, prefix_key: bytes | None = None, avoid: Collection[str] = ()
    ) -> Lease | None:
        """What ``acquire`` returns when it need not wait, else None (and nothing changes
        but the round-robin cursor); no coroutine, for the common case."""
        spec = self.snapshot.services[service]
        if service not in self._queues:
            self._queues[service] = _Queue()
        replica, _ = self._try_pick(service, spec, prefix_key, avoid)
        return None if replica is None else self._lease(replica)

    def _lease(self, replica: ReplicaStatus) -> Lease:
        self.in_flight[replica.replica_id] = self.in_flight.get(replica.replica_id, 0) + 1
        return Lease(replica, self)

    def _try_pick(
        self, service: str, spec: ServiceSpec, prefix_key: bytes | None, avoid: Collection[str]
    ) -> tuple[ReplicaStatus | None, bool]:
        healthy = [r for r in self.routable(service) if not self.is_ejected(r.replica_id)]
        preferred = [r for r in healthy if r.replica_id not in avoid] or healthy
        if not preferred:
            return None, False
        capacity = spec.admission.max_in_flight_per_replica or spec.slots
        queue = self._queues[service]
        queue.cursor += 1
        if len(preferred) == 1:
            # what every strategy picks from one candidate: it, if it has room
            only = preferred[0]
            return (only if self.in_flight.get(only.replica_id, 0) < capacity else None), True
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
            return None, True
        if affinity and prefix_key and (home is None or home not in by_id):
            queue.homes.place(prefix_key, picked)  # a new home; a spill leaves the old one
        return by_id[picked], True

    async def _wait(
        self, service: str, spec: ServiceSpec, queue: _Queue, *, start: float, any_routable: bool
    ) -> None:
        if len(queue.waiters) >= spec.admission.queue_size:
            raise errors.queue_full(service, retry_after_s=1)
        limit = spec.admission.max_wait_s if any_routable else spec.retries.wait_for_replica_s
        remaining = start + limit - self.clock()
        if remaining <= 0:
            if any_routable:
                raise errors.rate_limited(
                    f"the service '{service}' had no free slot within {limit:.1f} s; retry later",
                    retry_after_s=1,
                )
            raise errors.no_replica(service, waited_s=self.clock() - start)
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

    def release(self, replica: ReplicaStatus) -> None:
        count = self.in_flight.get(replica.replica_id, 0) - 1
        if count > 0:
            self.in_flight[replica.replica_id] = count
        else:
            self.in_flight.pop(replica.replica_id, None)
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
            while queue.waiters:
                waiter = queue.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
