"""``SimAdapter``: the sim engine behind the ``EngineAdapter`` protocol.

Nothing to install or download: a sim replica is this Python running
``python -m llmfleet.engines.sim``. Each sim version carries a default speed
profile, so an engine upgrade in a spec can make replicas faster or slower
exactly like a real engine release would; ``engine.args`` still override it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmfleet.engines.base import ContainerSpec, LaunchCommand, MetricMap, Probe, Progress
from llmfleet.errors import EngineVersionError
from llmfleet.spec.model import EngineKind, ServiceSpec

CONTAINER_PORT = 8000
API_KEY_ENV = "LLMFLEET_SIM_API_KEY"
"""The variable the sim reads its API key from (llama-server's is ``LLAMA_API_KEY``)."""


@dataclass(frozen=True)
class SpeedProfile:
    """Default timing of one sim version (seconds, tokens per second)."""

    ttft: float
    tps: float
    prefill_tps: float = 0.0

    def args(self) -> tuple[str, ...]:
        return (
            "--ttft",
            str(self.ttft),
            "--tps",
            str(self.tps),
            "--prefill-tps",
            str(self.prefill_tps),
        )


VERSIONS: Mapping[str, SpeedProfile] = {
    "1.2.0": SpeedProfile(ttft=0.02, tps=200.0),
    "1.1.0": SpeedProfile(ttft=0.03, tps=150.0),
    "1.0.0": SpeedProfile(ttft=0.05, tps=100.0),
}
"""Released sim versions, newest first, with the speed each one defaults to."""

SIM_METRICS = MetricMap(
    names={
        "sim:requests_running": "requests_running",
        "sim:requests_waiting": "requests_waiting",
        "sim:prompt_tokens_total": "prompt_tokens_total",
        "sim:generation_tokens_total": "generation_tokens_total",
        "sim:time_to_first_token_seconds": "time_to_first_token_seconds",
    },
    queue_series="sim:requests_waiting",
    running_series="sim:requests_running",
)


def _profile(version: str) -> SpeedProfile:
    """The profile of ``version``; an unknown version is the user's mistake to fix."""
    try:
        return VERSIONS[version]
    except KeyError:
        raise EngineVersionError(
            f"sim engine version {version!r} does not exist",
            hint=f"use one of {', '.join(VERSIONS)} in engine.version",
        ) from None


class SimAdapter:
    """The built-in simulated engine; stateless, pure except for nothing at all."""

    kind: EngineKind = EngineKind.SIM
    needs_model_file: bool = False
    readiness: tuple[Probe, ...] = (
        Probe("/health"),
        Probe("/v1/completions", body={"prompt": "ping", "max_tokens": 1}),
    )
    liveness: Probe = Probe("/health")
    metrics_path: str = "/metrics"
    metrics: MetricMap = SIM_METRICS

    def check_runnable(self, service: ServiceSpec) -> None:
        _profile(service.engine.version)

    def install(self, version: str, *, cache_dir: Path, progress: Progress) -> Path:
        """Nothing to build: the sim runs on this Python."""
        _profile(version)
        return Path(sys.executable)

    def installed(self, version: str, *, cache_dir: Path) -> Path | None:
        return Path(sys.executable) if version in VERSIONS else None

    def available_versions(self) -> list[str]:
        return list(VERSIONS)

    def local_command(
        self, service: ServiceSpec, *, executable: Path, model_path: Path | None, served_name: str
    ) -> LaunchCommand:
        """``python -m llmfleet.engines.sim`` on 127.0.0.1:{port}; the model file is unused."""
        argv = (
            str(executable),
            "-m",
            "llmfleet.engines.sim",
            "--port",
            "{port}",
            "--host",
            "127.0.0.1",
            *self._args(service, served_name),
        )
        return LaunchCommand(argv=argv, env=dict(service.engine.env), api_key_env=API_KEY_ENV)

    def container(self, service: ServiceSpec, *, model_uri: str, served_name: str) -> ContainerSpec:
        """The image's entrypoint is ``python -m llmfleet.engines.sim``; a pod must listen
        beyond loopback to be reachable, hence ``--allow-remote``."""
        version = service.engine.version
        args = (
            "--port",
            str(CONTAINER_PORT),
            "--host",
            "0.0.0.0",
            "--allow-remote",
            *self._args(service, served_name),
        )
        return ContainerSpec(
            image=f"llmfleet-sim:{version}",
            args=args,
            port=CONTAINER_PORT,
            env=dict(service.engine.env),
            api_key_env=API_KEY_ENV,
        )

    def continuation_fields(self) -> Mapping[str, Any]:
        """None needed: like llama-server, the sim continues a final assistant message."""
        return {}

    @staticmethod
    def _args(service: ServiceSpec, served_name: str) -> tuple[str, ...]:
        """Flags shared by process and container; the user's ``engine.args`` come last
        so they override the version's speed profile."""
        version = service.engine.version
        return (
            "--model-name",
            served_name,
            "--slots",
            str(service.slots),
            "--context",
            str(service.context),
            "--version",
            version,
            *_profile(version).args(),
            *service.engine.args,
        )
