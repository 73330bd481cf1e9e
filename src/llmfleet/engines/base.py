"""The one interface every inference engine is driven through.

An ``EngineAdapter`` says how to install an engine version on this machine, how
to run it as a local process (argv, env) or as a container (image, args: the
Kubernetes backend), how to probe readiness and liveness, where its metrics are
and how their names map onto llmfleet's, how to ask it to continue a partial
answer (stream resume), and which versions exist. Adapters are stateless; the
install cache lives under ``Settings.cache_dir``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from llmfleet.spec.model import EngineKind, ServiceSpec

Progress = Callable[[str], None]
"""Receives one human-readable progress line (e.g. a build step)."""


@dataclass(frozen=True)
class LaunchCommand:
    """A local process: argv and extra environment. ``{port}`` in argv is filled in
    by the backend once it has allocated a port."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    api_key_env: str | None = None
    """The variable this engine reads an API key from (llama-server ``LLAMA_API_KEY``,
    vLLM ``VLLM_API_KEY``); None: it has none. The local backend sets it to a
    secret of its own per replica, so that only the gateway can call the engine's
    port; the environment, not argv, because any local user can read argv."""


@dataclass(frozen=True)
class ContainerSpec:
    """The same replica as a container, for Kubernetes."""

    image: str
    args: tuple[str, ...]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    api_key_env: str | None = None
    """As ``LaunchCommand.api_key_env``; the cluster sets it from a Secret."""


@dataclass(frozen=True)
class Probe:
    """An HTTP check against a replica. ``body`` set means POST with that JSON.

    A readiness probe may run a real one-token generation: an engine whose API
    answers while its core is dead fails it.
    """

    path: str
    body: Mapping[str, Any] | None = None
    timeout_s: float = 5.0


@dataclass(frozen=True)
class MetricMap:
    """Maps an engine's metric names onto llmfleet's normalised names."""

    names: Mapping[str, str]
    """engine series name -> llmfleet series name (without the ``llmfleet_`` prefix)."""
    queue_series: str | None = None
    """the series that counts requests waiting for a slot, used by least-load routing."""
    running_series: str | None = None


class EngineAdapter(Protocol):
    """One inference engine. Pure except ``install`` and ``available_versions``."""

    kind: EngineKind
    needs_model_file: bool
    readiness: tuple[Probe, ...]
    liveness: Probe
    metrics_path: str
    metrics: MetricMap

    def check_runnable(self, service: ServiceSpec) -> None:
        """Raise ``EngineUnavailableError`` if this machine cannot run the service."""

    def install(self, version: str, *, cache_dir: Path, progress: Progress) -> Path:
        """Install ``version`` side by side with others; return the executable.

        Idempotent and cached: a second call returns at once.
        """

    def installed(self, version: str, *, cache_dir: Path) -> Path | None:
        """The executable of an installed version, or None."""

    def available_versions(self) -> list[str]:
        """Released versions, newest first. May use the network."""

    def local_command(
        self, service: ServiceSpec, *, executable: Path, model_path: Path | None, served_name: str
    ) -> LaunchCommand:
        """argv for a local replica bound to 127.0.0.1 on ``{port}``."""

    def container(self, service: ServiceSpec, *, model_uri: str, served_name: str) -> ContainerSpec:
        """The replica as a container for the Kubernetes backend."""

    def continuation_fields(self) -> Mapping[str, Any]:
        """Extra body fields that make a chat request continue a final assistant message."""


@runtime_checkable
class InstallsWork(Protocol):
    """An adapter whose installs take work worth announcing (a build, a download).
    Engines with nothing to install (sim, agents) need not implement it."""

    def preparation(self, version: str, *, cache_dir: Path) -> str | None:
        """What ``install`` must do before ``version`` runs here, as ``plan`` tells it
        (``builds it from source first, about 6 minutes on 2 cores``); None: nothing,
        it is installed. Reads the cache only."""
