"""Routing over many replicas: a pick looks at a few, and still spreads load and skips
replicas that must not get new requests; probes take turns."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.admission import EXACT_PICK_MAX, SAMPLE_TRIES, Lease, Router
from llmfleet.gateway.balancing import (
    ReplicaLoad,
    load_bound,
    pick_bounded_affinity,
    pick_least_load,
    rank_replicas,
)
from llmfleet.gateway.health import probe_round
from llmfleet.gateway.replicas import Snapshot
from llmfleet.spec.model import ServiceSpec

MANY = 1000


def spec(strategy: str = "least-load", slots: int = 64) -> ServiceSpec:
    return ServiceSpec.model_validate({
        "model": "sim:tiny",
        "engine": {"kind": "sim", "version": "1.2.0"},
        "slots": slots,
        "routing": {"strategy": strategy},
        "admission": {"max_wait_s": 5, "queue_size": 10_000},
    })  # fmt: skip


def replica(index: int, state: ReplicaState = ReplicaState.READY) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"chat-{index}", environment="test", service="chat", slot=index,
        runtime_hash="h", engine="sim", engine_version="1.2.0", state=state,
        port=20000 + index, served_name="chat",
    )  # fmt: skip


class Ejected:
    """``is_ejected`` over a set, counting the replicas a pick looks at."""

    def __init__(self, ids: set[str] | None = None) -> None:
        self.ids = ids or set()
        self.asked = 0

    def __call__(self, replica_id: str) -> bool:
        self.asked += 1
        return replica_id in self.ids


def router(
    service: ServiceSpec, replicas: list[ReplicaStatus], ejected: Ejected | None = None, **kw: Any
) -> Router:
    table = Router(
        is_ejected=ejected or Ejected(),
        engine_waiting=kw.get("waiting", {}),
        clock=lambda: 0.0,
        rng=random.Random(7),
    )
    table.update(Snapshot(services={"chat": service}, replicas=replicas, generation=1))
    return table


def acquire(table: Router, **kw: Any) -> Lease:
    lease = table.try_acquire("chat", **kw)
    assert lease is not None
    return lease


def test_least_load_over_many_replicas_spreads_load_and_looks_at_a_few() -> None:
    """2,000 requests held on 1,000 replicas: two choices keep the busiest at 5 or fewer
    (a random pick puts 7 or 8 on one), and each pick asks about at most SAMPLE_TRIES
    replicas, not 1,000."""
    ejected = Ejected()
    table = router(spec(), [replica(i) for i in range(MANY)], ejected)
    held = [acquire(table) for _ in range(2 * MANY)]
    assert ejected.asked <= SAMPLE_TRIES * len(held)
    loads = Counter(lease.replica.replica_id for lease in held)
    assert max(loads.values()) <= 5
    assert len(loads) > 0.8 * MANY  # nearly every replica has work
    for lease in held:
        lease.release()
    assert table.in_flight == {}


def test_engine_queues_count_in_a_sampled_pick() -> None:
    """A replica whose engine queue is long loses every two-way draw it is in."""
    waiting = {f"chat-{i}": 50 for i in range(MANY // 2)}  # half the fleet is backed up
    table = router(spec(), [replica(i) for i in range(MANY)], waiting=waiting)
    picked = Counter(acquire(table).replica.replica_id in waiting for _ in range(400))
    assert picked[True] < 0.35 * 400  # a draw of two backed-up ones: about 1 in 4


def test_draining_ejected_and_avoided_replicas_are_never_picked() -> None:
    """Draining replicas (not ready) and ejected ones get no request; a failover's
    avoided replica gets none while others have room."""
    replicas = [
        replica(i, ReplicaState.DRAINING if i % 3 == 0 else ReplicaState.READY) for i in range(MANY)
    ]
    ejected = Ejected({f"chat-{i}" for i in range(MANY) if i % 3 == 1})
    avoid = {"chat-2", "chat-5", "chat-8"}
    for strategy in ("least-load", "round-robin"):
        table = router(spec(strategy), replicas, ejected)
        for _ in range(3000):
            lease = acquire(table, avoid=avoid)
            index = int(lease.replica.replica_id.split("-")[1])
            assert index % 3 == 2, lease.replica.replica_id
            assert lease.replica.replica_id not in avoid
            lease.release()


def test_the_last_replica_with_room_is_found_among_many() -> None:
    """With every replica but one full, a sampled draw misses it and the exact pick
    finds it; with none left, the request waits (no lease)."""
    table = router(spec(slots=1), [replica(i) for i in range(MANY)])
    held = [acquire(table) for _ in range(MANY - 1)]
    last = acquire(table)
    assert last.replica.replica_id not in {lease.replica.replica_id for lease in held}
    assert table.try_acquire("chat") is None
    last.release()
    assert acquire(table).replica.replica_id == last.replica.replica_id


def test_round_robin_over_many_replicas_takes_turns() -> None:
    """1,000 requests on 1,000 replicas, each released at once: each replica gets one."""
    table = router(spec("round-robin"), [replica(i) for i in range(MANY)])
    picks = []
    for _ in range(MANY):
        lease = acquire(table)
        picks.append(lease.replica.replica_id)
        lease.release()
    assert len(set(picks)) == MANY


def test_few_replicas_are_compared_exactly() -> None:
    """Up to EXACT_PICK_MAX replicas least-load compares all: the only idle one wins."""
    table = router(spec(), [replica(i) for i in range(EXACT_PICK_MAX)])
    held = [acquire(table) for _ in range(EXACT_PICK_MAX)]  # one each
    idle = held.pop(17)
    idle.release()
    assert acquire(table).replica.replica_id == idle.replica.replica_id


async def test_a_waiting_request_gets_a_replica_freed_among_many() -> None:
    """The queue still works above the threshold: a request waiting while every
    replica is full gets the one a release frees."""
    table = router(spec(slots=1), [replica(i) for i in range(100)])
    held = [acquire(table) for _ in range(100)]
    waiting = asyncio.ensure_future(table.acquire("chat"))
    await asyncio.sleep(0)
    assert not waiting.done()
    held[42].release()
    lease = await asyncio.wait_for(waiting, 1)
    assert lease.replica.replica_id == held[42].replica.replica_id


def test_probe_rounds_take_turns_and_ask_ejected_replicas_every_round() -> None:
    """1,000 replicas, 100 a round: ten rounds probe each once; an ejected replica is
    in every round (it comes back on its first passing probe); few replicas: all."""
    replicas = [replica(i) for i in range(MANY)]
    ejected = Ejected({"chat-7"})
    rounds = [
        probe_round(replicas, is_ejected=ejected, cursor=100 * n, limit=100) for n in range(10)
    ]
    assert all(r.replica_id == "chat-7" for r in (each[0] for each in rounds))
    assert all(len(each) == 101 for each in rounds)
    healthy = Counter(r.replica_id for each in rounds for r in each[1:])
    assert len(healthy) == MANY - 1
    assert set(healthy.values()) == {1, 2}  # the wrap gives one replica a second turn
    few = replicas[:5]
    assert probe_round(few, is_ejected=ejected, cursor=3, limit=100) == few


def ranked_affinity(
    ids: list[str], loads: dict[str, ReplicaLoad], key: bytes, home: str | None, spill_after: int
) -> str | None:
    """Bounded affinity as it was written before its home check moved ahead of the
    ranking: every replica ranked, the home first."""
    bound = load_bound(sum(load.in_flight for load in loads.values()), len(ids), 1.25)
    ranked = rank_replicas(ids, key)
    if home in ids:
        ranked = [home, *(r for r in ranked if r != home)]
        if loads[home].has_room and loads[home].in_flight < spill_after:
            return home
    for replica in ranked:
        if loads[replica].has_room and loads[replica].in_flight + 1 <= bound:
            return replica
    open_ = [r for r in ids if loads[r].has_room]
    return pick_least_load(open_, loads) if open_ else None


@given(
    st.lists(st.integers(0, 6), min_size=2, max_size=8),
    st.binary(min_size=1, max_size=8),
    st.integers(0, 9),
    st.integers(1, 4),
)
def test_affinity_picks_what_ranking_every_replica_picked(
    values: list[int], key: bytes, home: int, spill_after: int
) -> None:
    """A home within its bound returns before the ranking: the same pick as ranking
    every replica first, home or not, full or not."""
    ids = [f"r{i}" for i in range(len(values))]
    loads = {r: ReplicaLoad(in_flight=v, capacity=5) for r, v in zip(ids, values, strict=True)}
    home_id = ids[home] if home < len(ids) else None
    picked = pick_bounded_affinity(
        ids, loads, key, load_factor=1.25, spill_after=spill_after, home=home_id, homed={}
    )
    assert picked == ranked_affinity(ids, loads, key, home_id, spill_after)
