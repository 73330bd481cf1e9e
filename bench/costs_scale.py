"""`llmfleet costs` for 100 services from recorded state, next to `llmfleet check` of the
same spec (the time any command spends loading the spec).

A temporary project: 100 services (half on CPUs, half on H100s from the catalogue, with
an own-server price beside it), one applied revision recorded in its SQLite state, and
three bench levels per service (300 measurements). No runtime runs, so there are no live
counters. Prints the median wall time of the real CLI over several runs, and of the
in-process part (gather + figures) alone. Goal: `costs` under 1 s.

    .venv/bin/python bench/costs_scale.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmfleet.costs.gather import gather_costs
from llmfleet.costs.measured import measurement_rows
from llmfleet.spec.loading import load_spec
from llmfleet.state.store import StateStore

HEADER = """
name: costs-scale
costs:
  cpu: {provider: gcp, sku: n2, price_per_vcpu_hour: 0.031611, price_per_gib_hour: 0.004237,
        as_of: "2026-12-05"}
  own:
    nvidia-h100: {server_price: 300000, residual_value: 0.3, amortisation_years: 4,
                  power_kw: 10.2, pue: 1.3, price_per_kwh: 0.10, colocation_per_kw_month: 180,
                  maintenance_per_year: 30000}
templates:
  base: {engine: {kind: sim, version: "1.0.0"}, model: "sim:tiny", slots: 4}
services:
"""


class Level:
    """A bench level as the measurement rows read it."""

    def __init__(self, tokens: float) -> None:
        self.requests, self.errors, self.duration_s = 100, 0, 10.0
        self.output_tokens_per_s, self.input_tokens_per_s = tokens, 2 * tokens


def spec_text(services: int) -> str:
    lines = [HEADER]
    for i in range(services):
        resources = "{gpus: 1, gpu_type: nvidia-h100}" if i % 2 else "{cpus: 2, memory: 4Gi}"
        lines.append(f"  svc-{i:03d}: {{extends: base, replicas: 2, resources: {resources}}}\n")
    return "".join(lines)


def record_state(spec: Path) -> None:
    loaded = load_spec(spec)
    env = loaded.resolved.environments["production"]
    with StateStore.open(loaded.resolved.state, base_dir=spec.parent) as store:
        revision = store.record_revision(
            environment="production", kind="apply", user="bench", message="scale",
            spec_hash=loaded.resolved.spec_hash(), spec=env.model_dump(mode="json"), plan={},
            outcome="success", expected_serial=None,
        )  # fmt: skip
        for name, service in env.services.items():
            levels = {f"c{c}": Level(20.0 * c) for c in (1, 4, 8)}
            store.record_measurements(
                measurement_rows(
                    levels,
                    environment="production",
                    service=name,
                    serial=revision.serial,
                    runtime_hash=service.runtime_hash(),
                    replicas=service.replicas,
                    source="bench",
                ),
                user="bench",
            )


def cli_seconds(spec: Path, *args: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "llmfleet", *args, "-f", str(spec)],
        cwd=spec.parent, capture_output=True, text=True, check=False,
        env={**os.environ, "LLMFLEET_HOME": str(spec.parent / ".home")},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"llmfleet {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started


def in_process_seconds(spec: Path) -> float:
    started = time.monotonic()
    loaded = load_spec(spec)
    with StateStore.open(loaded.resolved.state, base_dir=spec.parent) as store:
        fleet, _ = gather_costs(
            store, loaded.resolved.environments["production"], live=None, today=date.today()
        )
    assert len(fleet.services) == 100 and all(s.per_mtok_output for s in fleet.services)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "fleet.yaml"
        spec.write_text(spec_text(100))
        record_state(spec)
        check = [cli_seconds(spec, "check") for _ in range(args.runs)]
        costs = [cli_seconds(spec, "costs", "--json") for _ in range(args.runs)]
        inner = [in_process_seconds(spec) for _ in range(args.runs)]
    print(f"100 services, 300 measurements, {args.runs} runs each (median, min-max):")
    for name, times in (("llmfleet check (baseline)", check), ("llmfleet costs --json", costs),
                        ("in process: load + gather + figures", inner)):  # fmt: skip
        print(f"  {name:38s} {statistics.median(times):6.3f} s  "
              f"({min(times):.3f}-{max(times):.3f})")  # fmt: skip
    verdict = "met" if statistics.median(costs) < 1.0 else "MISSED"
    print(f"goal: costs under 1 s: {verdict}")


if __name__ == "__main__":
    main()
