"""The quickstart on the real llama-server and SmolLM2-135M: a bench, then `llmfleet costs`,
whose $/1M tokens must be the price over the tokens per hour the bench measured."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.engines import REAL_TIMEOUT_S
from tests.fixtures.fleet import Fleet

pytestmark = [pytest.mark.real, pytest.mark.timeout(REAL_TIMEOUT_S)]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
VCPU_HOUR, GIB_HOUR = 0.031611, 0.004237  # examples/quickstart.yaml's costs.cpu


@pytest.fixture(scope="module")
def quickstart(
    tmp_path_factory: pytest.TempPathFactory, llama_server_bin: Path, smollm_model: Path
) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("quickstart-costs"))
    shutil.copytree(EXAMPLE.parent / "suites", fleet.root / "suites")  # the spec names its suite
    text = EXAMPLE.read_text().replace("port: 8080", "port: GATEWAY_PORT")
    fleet.write(text.replace("port: 8081", "port: STAGING_PORT"))
    try:
        fleet.run("apply", "--yes", "-m", "quickstart")
        yield fleet
    finally:
        fleet.down()


def test_bench_then_costs_on_the_real_engine(quickstart: Fleet) -> None:
    """2 replicas x 4 slots run at concurrency 8: the bench's c8 level prices the tokens.
    Each replica is 1 vCPU and 1Gi: 0.031611 + 0.004237 = $0.035848 an hour."""
    bench = quickstart.run("bench", "chat", "--concurrency", "1,8", "--duration", "4",
                           "--max-tokens", "32")  # fmt: skip
    assert "recorded as measurement(s)" in bench.stdout, bench.stdout
    body = json.loads(quickstart.run("costs", "--json").stdout)
    [chat] = body["services"]
    measured = chat["measurement"]
    assert measured["concurrency"] == 8 and measured["replicas"] == 2
    assert measured["errors"] == 0 and measured["output_tokens_per_s"] > 0
    assert measured["input_tokens_per_s"] > 0  # llama-server's usage reached the bench
    hourly = 2 * (VCPU_HOUR + GIB_HOUR)
    by_hand_out = hourly / (measured["output_tokens_per_s"] * 3600) * 1e6
    by_hand_in = hourly / (measured["input_tokens_per_s"] * 3600) * 1e6
    assert chat["per_hour"] == pytest.approx(hourly)
    assert chat["per_million_output_tokens"] == pytest.approx(by_hand_out)
    assert chat["per_million_input_tokens"] == pytest.approx(by_hand_in)
    assert chat["live"] is not None and chat["live"]["output_tokens_per_s"] > 0
    print(
        f"\nquickstart: {measured['output_tokens_per_s']:.1f} output tok/s at c8 -> "
        f"${chat['per_million_output_tokens']:.4f} per 1M output tokens "
        f"(by hand ${by_hand_out:.4f}); {measured['input_tokens_per_s']:.1f} input tok/s -> "
        f"${chat['per_million_input_tokens']:.4f} per 1M input tokens"
    )
