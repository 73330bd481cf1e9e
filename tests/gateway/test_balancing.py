"""Pure balancing: strategies and the bounded-load invariant (Hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmfleet.gateway.balancing import (
    PrefixHomes,
    ReplicaLoad,
    load_bound,
    pick_replica,
    prefix_key_of,
    rank_replicas,
)
from llmfleet.spec.model import RoutingStrategy

IDS = [f"r{i}" for i in range(5)]
loads_strategy = st.lists(st.integers(0, 20), min_size=1, max_size=5)


def as_loads(values: list[int], capacity: int = 100) -> dict[str, ReplicaLoad]:
    return {IDS[i]: ReplicaLoad(in_flight=v, capacity=capacity) for i, v in enumerate(values)}


@given(loads_strategy, st.binary(min_size=1, max_size=32), st.sampled_from([1.1, 1.25, 2.0]))
def test_bounded_affinity_never_exceeds_the_bound(values, key, factor) -> None:
    """With room anywhere, the chosen replica stays within ceil(c*(L+1)/n)."""
    loads = as_loads(values)
    ids = list(loads)
    picked = pick_replica(
        RoutingStrategy.PREFIX_AFFINITY, ids, loads, prefix_key=key, load_factor=factor
    )
    assert picked is not None
    assert loads[picked].in_flight + 1 <= load_bound(sum(values), len(ids), factor)


@given(loads_strategy, st.binary(min_size=1, max_size=32))
def test_affinity_prefers_the_first_ranked_replica_when_under_bound(values, key) -> None:
    """The home replica wins whenever it is within the bound."""
    loads = as_loads(values)
    ids = list(loads)
    home = rank_replicas(ids, key)[0]
    picked = pick_replica(RoutingStrategy.PREFIX_AFFINITY, ids, loads, prefix_key=key)
    if loads[home].in_flight + 1 <= load_bound(sum(values), len(ids), 1.25):
        assert picked == home


@given(loads_strategy, st.integers(0, 100))
def test_least_load_picks_a_minimum(values, cursor) -> None:
    loads = as_loads(values)
    picked = pick_replica(RoutingStrategy.LEAST_LOAD, list(loads), loads, cursor=cursor)
    assert picked is not None
    assert loads[picked].in_flight == min(values)


@given(loads_strategy, st.sampled_from(list(RoutingStrategy)))
def test_no_pick_when_every_replica_is_full(values, strategy) -> None:
    loads = {IDS[i]: ReplicaLoad(in_flight=1, capacity=1) for i in range(len(values))}
    assert pick_replica(strategy, list(loads), loads, prefix_key=b"k") is None


def test_round_robin_cycles_over_replicas_with_room() -> None:
    loads = as_loads([0, 0, 0])
    picks = [
        pick_replica(RoutingStrategy.ROUND_ROBIN, list(loads), loads, cursor=c) for c in range(6)
    ]
    assert picks == ["r0", "r1", "r2", "r0", "r1", "r2"]


def test_least_load_counts_the_engine_queue() -> None:
    loads = {
        "a": ReplicaLoad(in_flight=0, engine_waiting=3, capacity=4),
        "b": ReplicaLoad(in_flight=1, capacity=4),
    }
    assert pick_replica(RoutingStrategy.LEAST_LOAD, ["a", "b"], loads) == "b"


def test_rendezvous_moves_only_the_keys_of_a_removed_replica() -> None:
    keys = [f"k{i}".encode() for i in range(200)]
    before = {k: rank_replicas(IDS, k)[0] for k in keys}
    after = {k: rank_replicas(IDS[:-1], k)[0] for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != IDS[-1])


def test_prefix_key_is_shared_by_turns_of_one_conversation() -> None:
    first = [{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"}]
    later = [*first, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    assert prefix_key_of({"messages": first}, 64) == prefix_key_of({"messages": later}, 64)
    assert prefix_key_of({"prompt": "x" * 100}, 64) == b"x" * 64
    assert prefix_key_of({"prompt": ""}, 64) is None


def test_new_prefixes_split_evenly_over_the_replicas() -> None:
    """Eight tenants over two idle replicas: four homes each, whatever the hashes say,
    and each tenant's next request goes home."""
    homes = PrefixHomes()
    ids = ["chat-0", "chat-1"]
    idle = {rid: ReplicaLoad(capacity=4) for rid in ids}
    for tenant in range(8):
        key = f"system prompt of tenant {tenant}".encode()
        picked = pick_replica(
            RoutingStrategy.PREFIX_AFFINITY, ids, idle, prefix_key=key, homed=homes.counts
        )
        assert picked is not None
        homes.place(key, picked)
    assert homes.counts == {"chat-0": 4, "chat-1": 4}
    for tenant in range(8):
        key = f"system prompt of tenant {tenant}".encode()
        home = homes.home(key)
        again = pick_replica(
            RoutingStrategy.PREFIX_AFFINITY,
            ids,
            idle,
            prefix_key=key,
            home=home,
            homed=homes.counts,
        )
        assert again == home


def test_a_remembered_home_wins_over_the_hash_until_its_bound() -> None:
    """A prefix stays on its home even where it hashes elsewhere; past the load bound it
    spills, and a home that left is replaced by the least-homed replica."""
    ids = ["a", "b", "c"]
    key = b"conversation"
    home = rank_replicas(ids, key)[-1]  # the last choice by hash
    idle = {rid: ReplicaLoad(capacity=8) for rid in ids}
    strategy = RoutingStrategy.PREFIX_AFFINITY
    assert pick_replica(strategy, ids, idle, prefix_key=key, home=home) == home
    busy = {**idle, home: ReplicaLoad(in_flight=4, capacity=8)}
    assert pick_replica(strategy, ids, busy, prefix_key=key, home=home) != home
    rest = [r for r in ids if r != home]
    counts = {rest[0]: 5, rest[1]: 1}
    assert pick_replica(strategy, rest, idle, prefix_key=key, home=home, homed=counts) == rest[1]


def test_prefix_homes_forget_the_oldest_and_keep_counts() -> None:
    homes = PrefixHomes(size=2)
    homes.place(b"k1", "a")
    homes.place(b"k2", "b")
    homes.place(b"k1", "b")  # moved: now the newest
    homes.place(b"k3", "a")  # k2 is the oldest: forgotten
    assert (homes.home(b"k1"), homes.home(b"k2"), homes.home(b"k3")) == ("b", None, "a")
    assert homes.counts == {"a": 1, "b": 1}


def test_a_home_keeps_its_prefix_below_spill_after_past_the_load_bound() -> None:
    """At low load the bound is a request or two; the home keeps its prefix until it has
    ``spill_after`` in flight (a spill would prefill the whole prefix elsewhere)."""
    ids = ["a", "b"]
    key = b"tenant"
    home = rank_replicas(ids, key)[-1]
    strategy = RoutingStrategy.PREFIX_AFFINITY
    loads = {rid: ReplicaLoad(capacity=8) for rid in ids}
    loads[home] = ReplicaLoad(in_flight=3, capacity=8)  # bound: ceil(1.25 * 4 / 2) = 3
    assert pick_replica(strategy, ids, loads, prefix_key=key, home=home, spill_after=4) == home
    assert pick_replica(strategy, ids, loads, prefix_key=key, home=home, spill_after=1) != home
    full = {**loads, home: ReplicaLoad(in_flight=3, capacity=3)}  # no room: spills anyway
    assert pick_replica(strategy, ids, full, prefix_key=key, home=home, spill_after=8) != home
