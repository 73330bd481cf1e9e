"""Plan time for a big fleet: 100 services from templates, 1,000 sim replicas.

Prints the time to load + resolve the spec and to plan it against (a) nothing
running (1,000 creates) and (b) a converged fleet (no-op), median of several runs,
next to the baseline of a 1-service spec measured in the same run. Goal: < 2 s.

    .venv/bin/python bench/plan_scale.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmfleet import __version__
from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.plan.diff import ActualEnvironment, plan_changes, runtime_config
from llmfleet.spec.loading import load_spec

HEADER = """
templates:
  base:
    engine: {kind: sim, version: "1.0.0"}
    model: sim:tiny
    resources: {cpus: 1, memory: 1Gi}
  chat:
    extends: base
    slots: 8
    routing: {strategy: prefix-affinity}
  batch:
    extends: chat
    context: 8192
services:
"""


def spec_text(services: int, replicas: int) -> str:
    lines = [HEADER]
    for i in range(services):
        template = "chat" if i % 2 else "batch"
        lines.append(
            f"  svc-{i:03d}:\n    extends: {template}\n    replicas: {replicas}\n"
            f"    labels: {{team: team-{i % 7}}}\n"
        )
    return "".join(lines)


def converged(desired: object) -> ActualEnvironment:
    services = desired.services  # type: ignore[attr-defined]
    replicas = [
        ReplicaStatus(
            replica_id=f"production-{name}-{slot}",
            environment="production",
            service=name,
            slot=slot,
            runtime_hash=svc.runtime_hash(),
            engine="sim",
            engine_version="1.0.0",
            state=ReplicaState.READY,
            port=20000 + slot,
            config=runtime_config(svc),
        )
        for name, svc in services.items()
        for slot in range(svc.replicas)
    ]
    configs = {name: svc.model_dump(mode="json") for name, svc in services.items()}
    gateway = ReplicaStatus(
        replica_id="gateway-production",
        environment="production",
        service="gateway",
        slot=0,
        runtime_hash="",
        engine="gateway",
        engine_version="",
        state=ReplicaState.READY,
        port=8080,
        config={"host": "127.0.0.1", "port": 8080, "version": __version__},
    )
    return ActualEnvironment(
        replicas=replicas,
        services=configs,
        gateway=gateway,
        observability=desired.observability.model_dump(mode="json"),  # type: ignore[attr-defined]
    )


def measure(path: Path, runs: int) -> dict[str, float]:
    load, empty, noop = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        loaded = load_spec(path)
        desired = loaded.resolved.environments["production"]
        t1 = time.perf_counter()
        plan = plan_changes(desired, ActualEnvironment(), serial=0, spec_hash="x")
        t2 = time.perf_counter()
        actual = converged(desired)
        t3 = time.perf_counter()
        again = plan_changes(desired, actual, serial=1, spec_hash="x")
        t4 = time.perf_counter()
        assert plan.has_changes and not again.has_changes
        load.append(t1 - t0)
        empty.append(t2 - t1)
        noop.append(t4 - t3)
    return {
        "load+resolve": statistics.median(load),
        "plan (nothing running)": statistics.median(empty),
        "plan (converged)": statistics.median(noop),
        "total": statistics.median(load) + statistics.median(empty),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.yaml", Path(tmp) / "small.yaml"
        big.write_text(spec_text(100, 10))
        small.write_text(spec_text(1, 1))
        baseline = measure(small, runs=7)
        result = measure(big, runs=5)
    print("plan of 100 services / 1,000 sim replicas (median seconds)")
    print(f"{'step':<24}{'1 svc/1 replica':>18}{'100 svc/1000 repl':>20}")
    for key in result:
        print(f"{key:<24}{baseline[key]:>18.4f}{result[key]:>20.4f}")
    print(f"goal: total < 2 s -> {'PASS' if result['total'] < 2 else 'FAIL'}")


if __name__ == "__main__":
    main()
