"""vLLM's argv, image, probes, metric names and continuation; and its clear no-GPU refusal."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from llmfleet.engines import gpus, vllm
from llmfleet.engines.gpus import GpuVisibility, visible_gpus
from llmfleet.engines.installing import CommandResult
from llmfleet.engines.vllm import VllmAdapter
from llmfleet.errors import EngineError, EngineUnavailableError
from llmfleet.spec.model import ServiceSpec

NO_GPU = GpuVisibility(0, "nvidia-smi is not installed")


QWEN = "hf:Qwen/Qwen2.5-0.5B-Instruct/model.safetensors"


def service(model: str = QWEN, **extra: object) -> ServiceSpec:
    body: dict[str, object] = {
        "model": model,
        "engine": {"kind": "vllm", "version": "0.11.0", "args": ["--enable-prefix-caching"]},
        "slots": 64, "context": 8192, "resources": {"gpus": 2, "cpus": 8},
    }
    body.update(extra)
    return ServiceSpec.model_validate(body)


def test_local_argv_serves_the_model_on_the_placeholder_port() -> None:
    launch = VllmAdapter().local_command(
        service(), executable=Path("/c/engines/vllm/0.11.0/bin/vllm"),
        model_path=Path("/m/model.gguf"), served_name="chat")
    assert launch.argv == (
        "/c/engines/vllm/0.11.0/bin/vllm", "serve", "/m/model.gguf",
        "--host", "127.0.0.1", "--port", "{port}", "--served-model-name", "chat",
        "--max-num-seqs", "64", "--max-model-len", "8192", "--tensor-parallel-size", "2",
        "--enable-prefix-caching",
    )
    assert launch.env["PYTHONPATH"] == "/c/engines/vllm/0.11.0"  # the --target install


def test_without_a_local_file_vllm_loads_the_hub_repository() -> None:
    launch = VllmAdapter().local_command(
        service(), executable=Path("vllm"), model_path=None, served_name="chat")
    assert launch.argv[2] == "Qwen/Qwen2.5-0.5B-Instruct"
    with pytest.raises(EngineError, match="needs a model file or an hf: source"):
        VllmAdapter().local_command(service(model="sim:x"), executable=Path("vllm"),
                                    model_path=None, served_name="chat")


def test_container_uses_the_official_image_and_pod_address() -> None:
    spec = VllmAdapter().container(service(), model_uri="/models/qwen", served_name="chat")
    assert spec.image == "vllm/vllm-openai:v0.11.0"
    assert spec.port == 8000
    assert spec.args[:6] == ("--model", "/models/qwen", "--host", "0.0.0.0", "--port", "8000")
    assert "--tensor-parallel-size" in spec.args


def test_probes_and_metrics() -> None:
    adapter = VllmAdapter()
    assert [p.path for p in adapter.readiness] == ["/health", "/v1/chat/completions"]
    assert adapter.readiness[1].body is not None and adapter.readiness[1].body["max_tokens"] == 1
    assert adapter.liveness.path == "/health" and adapter.metrics_path == "/metrics"
    names = adapter.metrics.names
    assert names["vllm:num_requests_running"] == "requests_running"
    assert names["vllm:num_requests_waiting"] == "requests_waiting"
    assert names["vllm:kv_cache_usage_perc"] == "kv_cache_usage_ratio"
    assert names["vllm:time_to_first_token_seconds"] == "time_to_first_token_seconds"
    assert names["vllm:generation_tokens_total"] == "generation_tokens_total"
    assert {"vllm:prefix_cache_hits", "vllm:prefix_cache_queries"} <= set(names)
    assert "vllm:gpu_cache_usage_perc" not in names  # deprecated
    assert adapter.metrics.queue_series == "vllm:num_requests_waiting"


def test_continuation_fields() -> None:
    assert VllmAdapter().continuation_fields() == {
        "continue_final_message": True, "add_generation_prompt": False}


def test_no_gpu_is_a_clear_refusal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(vllm, "visible_gpus", lambda: NO_GPU)
    with pytest.raises(EngineUnavailableError) as caught:
        VllmAdapter().check_runnable(service())
    text = str(caught.value)
    assert "vLLM needs an NVIDIA GPU; none is visible on this machine " \
        "(nvidia-smi is not installed)" in text
    assert "Run this service on the kubernetes backend or use engine kind llamacpp." in text
    with pytest.raises(EngineUnavailableError, match="vLLM needs an NVIDIA GPU"):
        VllmAdapter().install("0.11.0", cache_dir=tmp_path, progress=print)


def test_too_few_gpus_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm, "visible_gpus", lambda: GpuVisibility(1, "listed by nvidia-smi"))
    with pytest.raises(EngineUnavailableError, match="asks for 2 GPUs; this machine has 1"):
        VllmAdapter().check_runnable(service())
    VllmAdapter().check_runnable(service(resources={"gpus": 1}))


def test_install_uses_pip_target_per_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(vllm, "visible_gpus", lambda: GpuVisibility(1, "listed"))
    calls: list[list[str]] = []

    def fake_pip(argv: Sequence[str], *, env: Mapping[str, str] | None,
                 progress: Callable[[str], None], relay: Callable[[str], bool]) -> CommandResult:
        calls.append(list(argv))
        target = Path(argv[argv.index("--target") + 1])
        (target / "bin").mkdir()
        (target / "bin" / "vllm").write_text("#!/bin/sh\n")
        return CommandResult(0, ())

    adapter = VllmAdapter(runner=fake_pip, versions=lambda: ["0.11.0"])
    exe = adapter.install("0.11.0", cache_dir=tmp_path, progress=print)
    assert exe == tmp_path / "engines" / "vllm" / "0.11.0" / "bin" / "vllm"
    assert calls[0][-1] == "vllm==0.11.0"
    assert adapter.install("0.11.0", cache_dir=tmp_path, progress=print) == exe
    assert len(calls) == 1


def test_gpu_visibility_without_nvidia_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no nvidia-smi on PATH (and no pynvml), no GPU is visible and the reason says why."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(gpus, "_count_with_nvml", lambda: None)
    assert visible_gpus() == GpuVisibility(0, "nvidia-smi is not installed")


def test_gpu_visibility_with_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(gpus, "_count_with_nvml", lambda: None)
    assert visible_gpus().count == 1
