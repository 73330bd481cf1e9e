"""vLLM's OpenAI-compatible server: the GPU engine.

It cannot run on a machine without an NVIDIA GPU, so ``check_runnable`` and
``install`` refuse there with a message that says what to do instead; its argv,
image, probes and metric mapping are still what the Kubernetes backend uses.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llmfleet.engines.base import ContainerSpec, LaunchCommand, MetricMap, Probe, Progress
from llmfleet.engines.gpus import visible_gpus
from llmfleet.engines.installing import (
    CommandRunner,
    file_lock,
    publish_dir,
    run_streaming,
    staging_dir,
)
from llmfleet.engines.probing import HEALTH, OPENAI_READINESS
from llmfleet.engines.pypi_versions import available_versions
from llmfleet.errors import EngineError, EngineUnavailableError
from llmfleet.models.sources import HfSource, parse_source
from llmfleet.spec.model import EngineKind, ServiceSpec

PACKAGE = "vllm"
IMAGE = "vllm/vllm-openai"
CONTAINER_PORT = 8000
API_KEY_ENV = "VLLM_API_KEY"
"""vLLM's key when ``--api-key`` is not given; it guards the ``/v1`` paths only
(``/health`` and ``/metrics`` stay open)."""

METRICS = MetricMap(
    names={
        "vllm:num_requests_running": "requests_running",
        "vllm:num_requests_waiting": "requests_waiting",
        "vllm:kv_cache_usage_perc": "kv_cache_usage_ratio",
        "vllm:prefix_cache_hits": "prefix_cache_hits_total",
        "vllm:prefix_cache_queries": "prefix_cache_queries_total",
        "vllm:time_to_first_token_seconds": "time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds": "inter_token_latency_seconds",
        "vllm:e2e_request_latency_seconds": "request_latency_seconds",
        "vllm:request_queue_time_seconds": "request_queue_seconds",
        "vllm:prompt_tokens_total": "prompt_tokens_total",
        "vllm:generation_tokens_total": "generation_tokens_total",
        "vllm:request_success_total": "requests_succeeded_total",
    },
    queue_series="vllm:num_requests_waiting",
    running_series="vllm:num_requests_running",
)
"""vLLM labels every series with ``model_name``; ``kv_cache_usage_perc`` is a 0..1
ratio despite its name (it replaced the deprecated ``gpu_cache_usage_perc``)."""


def _no_gpu_error(reason: str) -> EngineUnavailableError:
    return EngineUnavailableError(
        f"vLLM needs an NVIDIA GPU; none is visible on this machine ({reason})",
        hint="Run this service on the kubernetes backend or use engine kind llamacpp.",
    )


class VllmAdapter:
    """vLLM, installed per version with ``pip install --target`` (GPU machines only)."""

    kind: EngineKind = EngineKind.VLLM
    needs_model_file: bool = True
    readiness: tuple[Probe, ...] = OPENAI_READINESS
    liveness: Probe = HEALTH
    metrics_path: str = "/metrics"
    metrics: MetricMap = METRICS

    def __init__(
        self,
        *,
        runner: CommandRunner = run_streaming,
        versions: Callable[[], list[str]] | None = None,
    ) -> None:
        self._runner = runner
        self._versions = versions or (lambda: available_versions(PACKAGE))

    def check_runnable(self, service: ServiceSpec) -> None:
        seen = visible_gpus()
        if seen.count == 0:
            raise _no_gpu_error(seen.reason)
        if service.resources.gpus > seen.count:
            raise EngineUnavailableError(
                f"the service asks for {service.resources.gpus} GPUs; this machine has "
                f"{seen.count}",
                hint="lower resources.gpus or use the kubernetes backend",
            )

    def installed(self, version: str, *, cache_dir: Path) -> Path | None:
        executable = _target_dir(cache_dir, version) / "bin" / "vllm"
        return executable if executable.is_file() else None

    def install(self, version: str, *, cache_dir: Path, progress: Progress) -> Path:
        """``pip install --target CACHE/engines/vllm/VERSION vllm==VERSION``, GPU machines only."""
        seen = visible_gpus()
        if seen.count == 0:
            raise _no_gpu_error(seen.reason)
        found = self.installed(version, cache_dir=cache_dir)
        if found is not None:
            return found
        final = _target_dir(cache_dir, version)
        lock = final.with_name(f".{version}.lock")
        with file_lock(lock, progress=progress, what=f"vllm {version}"):
            found = self.installed(version, cache_dir=cache_dir)
            if found is None:
                self._pip_install(version, final, progress)
        return final / "bin" / "vllm"

    def _pip_install(self, version: str, final: Path, progress: Progress) -> None:
        with staging_dir(final.parent, f"install-{version}") as staged:
            argv = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--target",
                str(staged),
                f"{PACKAGE}=={version}",
            ]
            result = self._runner(argv, env=None, progress=progress, relay=lambda line: True)
            if not result.ok:
                tail = "\n".join(f"    | {line}" for line in result.tail[-15:])
                raise EngineError(f"pip could not install vllm {version}:\n{tail}")
            publish_dir(staged, final)

    def available_versions(self) -> list[str]:
        return self._versions()

    def preparation(self, version: str, *, cache_dir: Path) -> str | None:
        if self.installed(version, cache_dir=cache_dir) is not None:
            return None
        return "installs it with pip first (several GB to download, once per version)"

    def local_command(
        self, service: ServiceSpec, *, executable: Path, model_path: Path | None, served_name: str
    ) -> LaunchCommand:
        model = str(model_path) if model_path is not None else hub_repo(service)
        argv = (
            str(executable),
            "serve",
            model,
            *serve_args(service, host="127.0.0.1", port="{port}", served_name=served_name),
        )
        env = dict(service.engine.env)
        if executable.parent.name == "bin":
            # a ``pip install --target`` tree: its packages sit beside bin/
            env.setdefault("PYTHONPATH", str(executable.parent.parent))
        return LaunchCommand(argv=argv, env=env, api_key_env=API_KEY_ENV)

    def container(self, service: ServiceSpec, *, model_uri: str, served_name: str) -> ContainerSpec:
        # The image's entrypoint is vLLM's server, which takes the model as --model.
        args = (
            "--model",
            model_uri,
            *serve_args(service, host="0.0.0.0", port=str(CONTAINER_PORT), served_name=served_name),
        )
        return ContainerSpec(
            image=f"{IMAGE}:v{service.engine.version.removeprefix('v')}",
            args=args,
            port=CONTAINER_PORT,
            env=dict(service.engine.env),
            api_key_env=API_KEY_ENV,
        )

    def continuation_fields(self) -> Mapping[str, Any]:
        return {"continue_final_message": True, "add_generation_prompt": False}


def serve_args(service: ServiceSpec, *, host: str, port: str, served_name: str) -> tuple[str, ...]:
    """vLLM server options for ``service``; pure. ``--max-num-seqs`` is vLLM's slot count."""
    return (
        "--host",
        host,
        "--port",
        port,
        "--served-model-name",
        served_name,
        "--max-num-seqs",
        str(service.slots),
        "--max-model-len",
        str(service.context),
        "--tensor-parallel-size",
        str(max(1, service.resources.gpus)),
        *service.engine.args,
    )


def hub_repo(service: ServiceSpec) -> str:
    """The hub repository vLLM loads itself when no local file was resolved."""
    source = parse_source(service.model.source)
    if isinstance(source, HfSource):
        return source.repo_id
    raise EngineError(f"vLLM needs a model file or an hf: source, got {service.model.source}")


def _target_dir(cache_dir: Path, version: str) -> Path:
    return cache_dir / "engines" / "vllm" / version
