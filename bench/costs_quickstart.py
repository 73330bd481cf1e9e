"""The quickstart's price per million tokens on this machine, next to the same by hand.

Applies examples/quickstart.yaml (the real llama-server and SmolLM2-135M, 2 replicas of
1 vCPU and 1Gi each, priced at its costs.cpu: GCP N2 on demand, $0.031611 per vCPU-hour
and $0.004237 per GiB-hour), runs `llmfleet bench chat` at concurrency 1 and 8 (the
service's 2 replicas x 4 slots), then `llmfleet costs --json`; and computes the same
figure by hand from the tok/s the bench printed: 2 x 0.035848 / (tok/s x 3600) x 1e6.

    .venv/bin/python bench/costs_quickstart.py [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._quickstart import project

VCPU_HOUR, GIB_HOUR, REPLICAS = 0.031611, 0.004237, 2


def llmfleet(spec: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "llmfleet", *args, "-f", str(spec)],
        cwd=spec.parent, capture_output=True, text=True, check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"llmfleet {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def printed_tokens_per_s(bench_output: str, level: str) -> float:
    """The tok/s column of the bench's own table, on the row of ``level``."""
    for line in bench_output.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if len(cells) >= 9 and cells[1] == level:
            return float(cells[7])
    raise SystemExit(f"no {level} row in the bench output:\n{bench_output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    args = parser.parse_args()
    with project() as p:
        p.write(p.base)
        llmfleet(p.spec, "apply", "--yes")
        bench = llmfleet(p.spec, "bench", "chat", "--concurrency", "1,8",
                         "--duration", str(args.duration), "--max-tokens", "64")  # fmt: skip
        costs = json.loads(llmfleet(p.spec, "costs", "--json"))
    [chat] = costs["services"]
    measured = chat["measurement"]
    tokens = printed_tokens_per_s(bench, "c8")
    hourly = REPLICAS * (VCPU_HOUR + GIB_HOUR)
    by_hand = hourly / (tokens * 3600) * 1e6
    print(bench)
    print(f"price: {REPLICAS} replicas x (1 vCPU x ${VCPU_HOUR} + 1 GiB x ${GIB_HOUR}) "
          f"= ${hourly:.6f} an hour")  # fmt: skip
    print(f"llmfleet costs: ${chat['per_million_output_tokens']:.4f} per 1M output tokens "
          f"(measurement #{measured['id']}, c{measured['concurrency']}, "
          f"{measured['output_tokens_per_s']:.2f} tok/s); "
          f"${chat['per_million_input_tokens']:.4f} per 1M input tokens")  # fmt: skip
    formula = f"{hourly:.6f} / ({tokens} x 3600) x 1e6"
    print(f"by hand from the bench's printed {tokens} tok/s: {formula} = ${by_hand:.4f} per 1M")


if __name__ == "__main__":
    main()
