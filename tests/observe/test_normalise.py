"""Engine metrics onto common llmfleet_* names: real llama-server, recorded vLLM, real sim."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from llmfleet.engines.environment import engine_environment
from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.engines.sim.metrics import SimMetrics
from llmfleet.observe.exposition import Sample, parse_text, render_samples
from llmfleet.observe.normalise import normalise_metrics
from llmfleet.spec.model import ServiceSpec
from tests.fixtures.engines import LLAMACPP_VERSION, QUICKSTART_MODEL, REAL_TIMEOUT_S
from tests.fixtures.processes import stop_process

DATA = Path(__file__).parent / "data"
LABELS = {"service": "chat", "replica": "r0", "engine": "x"}
COMMON = {
    "llmfleet_requests_running",
    "llmfleet_requests_waiting",
    "llmfleet_prompt_tokens_total",
    "llmfleet_generation_tokens_total",
}


def by_name(samples: list[Sample]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in samples:
        out.setdefault(s.name, []).append(s)
    return out


def test_vllm_recorded_metrics_map_onto_common_names() -> None:
    """vLLM's gauges, counters and histograms keep their values under llmfleet_* names."""
    samples = by_name(normalise_metrics("vllm", (DATA / "vllm_metrics.txt").read_text(), LABELS))
    assert samples["llmfleet_requests_running"][0].value == 3
    assert samples["llmfleet_requests_waiting"][0].value == 2
    assert samples["llmfleet_kv_cache_usage_ratio"][0].value == 0.4375
    assert samples["llmfleet_prefix_cache_hits_total"][0].value == 12288
    assert samples["llmfleet_generation_tokens_total"][0].kind == "counter"
    buckets = samples["llmfleet_time_to_first_token_seconds_bucket"]
    assert [dict(b.labels)["le"] for b in buckets][-1] == "+Inf"
    assert buckets[0].family == "llmfleet_time_to_first_token_seconds"
    assert samples["llmfleet_inter_token_latency_seconds_count"][0].value == 5080
    assert "llmfleet_num_preemptions_total" not in samples  # unmapped series are dropped
    labels = dict(samples["llmfleet_requests_running"][0].labels)
    assert labels["engine"] == "x" and labels["engine_engine"] == "0"  # clash kept, ours win
    assert labels["model_name"] == "Qwen/Qwen2.5-7B-Instruct"


def test_llamacpp_recorded_metrics_map_onto_the_same_names_as_vllm() -> None:
    """One dashboard serves both: the common names exist for llama-server and vLLM."""
    llama = by_name(
        normalise_metrics("llamacpp", (DATA / "llamacpp_metrics.txt").read_text(), LABELS)
    )
    vllm = by_name(normalise_metrics("vllm", (DATA / "vllm_metrics.txt").read_text(), LABELS))
    assert set(llama) >= COMMON and set(vllm) >= COMMON
    assert llama["llmfleet_prompt_tokens_total"][0].value == 32
    assert llama["llmfleet_generation_tokens_total"][0].value == 8


OLDER_LLAMA_SERVER = """\
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.5
# TYPE llamacpp:kv_cache_tokens gauge
llamacpp:kv_cache_tokens 1234
"""
"""What llama-server builds before the unified KV cache exported (newer ones export
no KV usage at all: see ``data/llamacpp_metrics.txt``)."""


def test_older_llama_server_kv_cache_series_reach_the_kv_cache_panel() -> None:
    """The dashboard's KV cache usage reads vLLM's gauge and older llama-server builds'."""
    llama = by_name(normalise_metrics("llamacpp", OLDER_LLAMA_SERVER, LABELS))
    assert llama["llmfleet_kv_cache_usage_ratio"][0].value == 0.5
    assert llama["llmfleet_kv_cache_tokens"][0].value == 1234
    cached = by_name(
        normalise_metrics("llamacpp", (DATA / "llamacpp_metrics.txt").read_text(), LABELS)
    )
    assert cached["llmfleet_prompt_tokens_cached_total"][0].kind == "counter"  # reuse panel


def test_sim_metrics_from_the_real_sim_registry_normalise() -> None:
    """The sim's own exposition (prometheus_client) maps through the sim adapter."""
    sim = SimMetrics(running=lambda: 1, waiting=lambda: 4)
    sim.prompt_tokens.inc(10)
    sim.time_to_first_token.observe(0.02)
    samples = by_name(normalise_metrics("sim", sim.render().decode(), LABELS))
    assert samples["llmfleet_requests_waiting"][0].value == 4
    assert samples["llmfleet_prompt_tokens_total"][0].value == 10
    assert samples["llmfleet_time_to_first_token_seconds_count"][0].value == 1
    assert set(samples) >= COMMON


def test_rendered_text_parses_back_to_the_same_samples() -> None:
    """The fleet endpoint's renderer and parser agree, escapes included."""
    text = (DATA / "vllm_metrics.txt").read_text()
    samples = normalise_metrics("vllm", text, {**LABELS, "service": 'we"ird\\name'})
    again = {(r.name, r.labels, r.value) for r in parse_text(render_samples(samples))}
    assert again == {(s.name, s.labels, s.value) for s in samples}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_live_llama_server_metrics_normalise(llama_server_bin: Path, smollm_model: Path) -> None:
    """A real llama-server's /metrics after one request yields the common names with values."""
    service = ServiceSpec.model_validate(
        {
            "model": QUICKSTART_MODEL,
            "engine": {"kind": "llamacpp", "version": LLAMACPP_VERSION},
            "slots": 1,
            "context": 256,
        }
    )
    launch = LlamaCppAdapter().local_command(
        service, executable=llama_server_bin, model_path=smollm_model, served_name="chat"
    )
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in launch.argv]
    proc = subprocess.Popen(  # the install's proved setting included, as the agent does
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=engine_environment(launch.env),
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.get("/health").json().get("status") == "ok":
                        break
                except (httpx.TransportError, ValueError):
                    pass
                time.sleep(0.05)
            client.post(
                "/v1/chat/completions",
                json={
                    "model": "chat",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 3,
                },
            )
            text = client.get("/metrics").text
    finally:
        stop_process(proc)
    samples = by_name(normalise_metrics("llamacpp", text, LABELS))
    assert set(samples) >= COMMON
    assert samples["llmfleet_generation_tokens_total"][0].value >= 1
