"""The quality gate with the real llama-server and SmolLM2-135M (the quickstart)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.engines import REAL_TIMEOUT_S
from tests.fixtures.fleet import Fleet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def quickstart(fleet: Fleet, *, context: int = 4096, speed: bool = True) -> None:
    """The shipped quickstart and its suite, on free ports, one replica, short load."""
    shutil.copytree(EXAMPLES / "suites", fleet.root / "suites")
    text = (EXAMPLES / "quickstart.yaml").read_text()
    text = text.replace("port: 8080", "port: GATEWAY_PORT").replace(
        "port: 8081", "port: STAGING_PORT"
    )
    text = text.replace("replicas: 2 ", "replicas: 1 ").replace("duration_s: 6", "duration_s: 2")
    text = text.replace("concurrency: [1, 4]", "concurrency: [2]")
    # Two seconds of load give a handful of samples, whose p95 is a max: on this shared
    # 2-core machine one stall decides it. Speed verdicts are covered with the sim engine
    # and by bench/validate_time.py; here the gate judges quality, agreement and errors
    # (so a level of a few answers is enough: min_samples 1).
    text = text.replace("max_ttft_p95_ratio: 1.5", "max_ttft_p95_ratio: 1000")
    text = text.replace("min_throughput_ratio: 0.8", "min_throughput_ratio: 0")
    text = text.replace("max_error_rate: 0", "max_error_rate: 0\n        min_samples: 1")
    fleet.write(text)
    fleet.run("apply", "--yes")
    if context != 4096:
        fleet.write(text.replace("context: 4096", f"context: {context}"))


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_quickstart_suite_passes_on_the_quickstart_model(
    fleet: Fleet, llama_server_bin: Path, smollm_model: Path
) -> None:
    """The shipped suite passes for SmolLM2-135M against itself in production."""
    quickstart(fleet)
    out = fleet.run("validate").stdout
    assert "validation passed" in out, out


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_too_small_context_fails_the_quality_gate(
    fleet: Fleet, llama_server_bin: Path, smollm_model: Path
) -> None:
    """A candidate with a 64-token context breaks answers; the gate fails, production stays."""
    quickstart(fleet, context=64)
    before = {r.replica_id for r in fleet.ready()}
    result = fleet.run("validate", check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "quality pass rate" in result.stdout and "FAIL" in result.stdout
    assert {r.replica_id for r in fleet.ready()} == before
    assert "never validated" not in fleet.run("promote", check=False).stderr
    assert {r.replica_id for r in fleet.ready()} == before
