"""Prefix affinity's quick pick of a prefix's home routes exactly as the full pick does:
the same replica (or none, or a hold) for the same loads, ejections, avoid sets, prefixes
and snapshots, and the same routing memory afterwards."""

from __future__ import annotations

import random
from collections.abc import Collection

import pytest

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.admission import Lease, Router
from llmfleet.gateway.balancing import ReplicaLoad, pick_replica, prefix_digest
from llmfleet.gateway.replicas import Snapshot
from llmfleet.spec.model import RoutingStrategy, ServiceSpec


class FullPickRouter(Router):
    """The router as it picked before the quick home pick: every pick builds every
    preferred replica's load and calls ``pick_replica`` (the reference)."""

    def _try_pick(
        self,
        service: str,
        spec: ServiceSpec,
        prefix_key: bytes | None,
        avoid: Collection[str],
        hold: bool = False,
    ) -> tuple[ReplicaStatus | None, bool, bytes | None]:
        healthy = [r for r in self.routable(service) if not self.is_ejected(r.replica_id)]
        preferred = [r for r in healthy if r.replica_id not in avoid] or healthy
        if not preferred:
            return None, False, None
        capacity = spec.admission.max_in_flight_per_replica or spec.slots
        queue = self._queues[service]
        queue.cursor += 1
        if len(preferred) == 1:
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
            return None, True, digest
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
            queue.homes.place(prefix_key, picked)
        return by_id[picked], True, digest


def replica(index: int) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"chat-{index}", environment="test", service="chat", slot=index,
        runtime_hash="h", engine="sim", engine_version="1.2.0", state=ReplicaState.READY,
        port=20000 + index, served_name="chat",
    )  # fmt: skip


def affinity_spec(rng: random.Random) -> ServiceSpec:
    return ServiceSpec.model_validate({
        "model": "sim:tiny", "engine": {"kind": "sim", "version": "1.2.0"},
        "slots": rng.choice([1, 2, 4, 8]),
        "routing": {
            "strategy": "prefix-affinity",
            "spill_after": rng.choice([1, 2, 4]),
            "load_factor": rng.choice([1.05, 1.25, 2.0]),
            "prefix_wait_s": rng.choice([0.0, 1.0]),  # 1.0: requests are held for their prefix
        },
    })  # fmt: skip


def same_memory(new: Router, old: Router) -> None:
    """Both routers hold the same counts, cursor, homes and prefixes in flight."""
    assert new.in_flight == old.in_flight
    mine, theirs = new._queues["chat"], old._queues["chat"]
    assert mine.cursor == theirs.cursor
    assert mine.homes._homes == theirs.homes._homes
    assert {r: n for r, n in mine.homes.counts.items() if n} == {
        r: n for r, n in theirs.homes.counts.items() if n
    }
    assert mine.busy == theirs.busy


@pytest.mark.parametrize("seed", range(12))
def test_quick_home_pick_routes_as_the_full_pick(seed: int) -> None:
    """1,500 random steps (picks with and without a prefix or avoid set, releases,
    ejections, engine queues, replicas leaving and coming back) on the router and on the
    full-pick reference: every pick returns the same replica, routability and hold."""
    rng = random.Random(seed)
    spec = affinity_spec(rng)
    count = rng.choice([2, 3, 6, 40])
    everyone = [replica(i) for i in range(count)]
    present = list(everyone)
    ejected: set[str] = set()
    waiting: dict[str, int] = {}
    routers = [
        cls(is_ejected=ejected.__contains__, engine_waiting=waiting, clock=lambda: 0.0)
        for cls in (Router, FullPickRouter)
    ]
    keys = [f"tenant-{i}".encode() for i in range(3 * count)] + [None]
    leases: list[tuple[Lease, Lease]] = []
    hold = spec.routing.prefix_wait_s is not None and spec.routing.prefix_wait_s > 0

    def update() -> None:
        for table in routers:
            table.update(Snapshot(services={"chat": spec}, replicas=present, generation=1))

    update()
    first = [table.try_acquire("chat", prefix_key=keys[0]) for table in routers]
    assert first[0] is not None and first[1] is not None  # also builds each queue
    assert first[0].replica.replica_id == first[1].replica.replica_id
    leases.append((first[0], first[1]))
    for _ in range(1500):
        step = rng.random()
        rid = rng.choice(everyone).replica_id
        if step < 0.55:
            key = rng.choice(keys)
            ids = [r.replica_id for r in everyone]
            avoid = set(rng.sample(ids, rng.choice([0, 0, 0, 1, 2, len(ids)])))
            picks = [table._try_pick("chat", spec, key, avoid, hold) for table in routers]
            (new, new_any, new_digest), (old, old_any, old_digest) = picks
            assert (new and new.replica_id, new_any, new_digest) == (
                old and old.replica_id,
                old_any,
                old_digest,
            )
            if new is not None and old is not None:
                queues = [table._queues["chat"] for table in routers]
                pair = (routers[0]._lease(queues[0], new, new_digest),
                        routers[1]._lease(queues[1], old, old_digest))  # fmt: skip
                leases.append(pair)
        elif step < 0.8 and leases:
            for lease in leases.pop(rng.randrange(len(leases))):
                lease.release()
        elif step < 0.88:
            ejected.symmetric_difference_update({rid})
        elif step < 0.96:
            waiting[rid] = rng.randrange(4)
        else:
            gone = [r for r in present if r.replica_id != rid]
            present = gone if len(gone) < len(present) else [*present, replica(int(rid[5:]))]
            update()
        same_memory(*routers)
