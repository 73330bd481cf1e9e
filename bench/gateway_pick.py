"""The gateway's routing cost per request against the number of replicas, in process.

    .venv/bin/python bench/gateway_pick.py [--rounds 5] [--picks 2000] [--held 64]

A ``Router`` (the gateway's route table) over 10 replicas (the baseline), 100 and
1,000 of one service, each strategy, with ``--held`` leases held so that loads
differ: the median over rounds of the CPU time (this process's: the machine's
neighbours do not count) one ``try_acquire`` plus its ``release`` takes, and its
ratio to 10 replicas. Goal (issue 16, figure 2 needs
it): least-load and round-robin at 1,000 replicas within 2x of 10 (their pick
looks at a few replicas, not all; ``admission.EXACT_PICK_MAX``), and prefix
affinity too: its prefixes' homes hold fewer than ``routing.spill_after`` requests
here, so each pick is a home hit that looks at the home alone
(``Router._pick_home``); a home past it still weighs every replica. No network: this is
the part of ``bench/gateway_endpoints.py``'s figure that grows with the replicas,
without the noise of the processes around it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.admission import Router
from llmfleet.gateway.replicas import Snapshot
from llmfleet.spec.model import ServiceSpec

COUNTS = (10, 100, 1000)
STRATEGIES = ("least-load", "round-robin", "prefix-affinity")


def replica(index: int) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"chat-{index}", environment="bench", service="chat", slot=index,
        runtime_hash="h", engine="sim", engine_version="1.2.0", state=ReplicaState.READY,
        port=20000 + index, served_name="chat",
    )  # fmt: skip


def pick_us(strategy: str, count: int, args: argparse.Namespace) -> float:
    """CPU microseconds per try_acquire + release, median over rounds."""
    spec = ServiceSpec.model_validate({
        "model": "sim:tiny", "engine": {"kind": "sim", "version": "1.2.0"}, "slots": 64,
        "routing": {"strategy": strategy},
    })  # fmt: skip
    router = Router(
        is_ejected=lambda _: False, engine_waiting={}, clock=time.monotonic, rng=random.Random(1)
    )
    router.update(Snapshot(services={"chat": spec}, replicas=[replica(i) for i in range(count)],
                           generation=1))  # fmt: skip
    keys = [f"tenant-{i}".encode() for i in range(50)]
    held = [router.try_acquire("chat", prefix_key=keys[i % 50]) for i in range(args.held)]
    assert all(held)
    runs = []
    for _ in range(args.rounds):
        start = time.process_time()
        for i in range(args.picks):
            lease = router.try_acquire("chat", prefix_key=keys[i % 50])
            assert lease is not None
            lease.release()
        runs.append((time.process_time() - start) / args.picks * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--picks", type=int, default=2000)
    parser.add_argument("--held", type=int, default=64)
    args = parser.parse_args()
    print(f"try_acquire + release (CPU time), median of {args.rounds} rounds of {args.picks}, "
          f"{args.held} leases held:")  # fmt: skip
    for strategy in STRATEGIES:
        cost = {count: pick_us(strategy, count, args) for count in COUNTS}
        cells = "  ".join(
            f"{count:>5}: {cost[count]:7.1f} us (x{cost[count] / cost[10]:.2f})" for count in COUNTS
        )
        print(f"  {strategy:>15}  {cells}")
    print("goal: each strategy at 1000 within x2.00 of 10")


if __name__ == "__main__":
    main()
