"""Everything a replica needs before it can start: engine installed, model cached.

Side effects: installs engines and fetches models into the shared cache, and
records their checksums in the state store. Each service is prepared once per
apply, however many replicas it gets.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from llmfleet.backends.base import ReplicaSpec
from llmfleet.engines.agent import health_probes
from llmfleet.engines.base import EngineAdapter, Progress
from llmfleet.engines.probing import embedding_probes
from llmfleet.engines.registry import get_adapter
from llmfleet.models.store import ModelStore
from llmfleet.plan.diff import runtime_config
from llmfleet.settings import Settings
from llmfleet.spec.model import ServiceSpec
from llmfleet.state.store import StateStore


@dataclass(frozen=True)
class Prepared:
    """A service ready to be started: its adapter, engine executable and model file."""

    name: str
    service: ServiceSpec
    adapter: EngineAdapter
    executable: Path
    model_path: Path | None
    replica_env: Callable[[str], Mapping[str, str]] | None = None
    """extra environment of the replica with this id (an agent's key and gateway:
    ``apply.agents``); it may create what it hands out"""


def prepare_service(
    name: str,
    service: ServiceSpec,
    *,
    settings: Settings,
    store: StateStore,
    spec_dir: Path,
    progress: Progress,
    verify_model: bool = False,
) -> Prepared:
    """Install the engine version and fetch the model of ``service``; record checksums.

    ``verify_model`` re-hashes a cached model file even if it looks untouched.
    """
    adapter = get_adapter(service.engine.kind)
    adapter.check_runnable(service)
    version = service.engine.version
    progress(f"{name}: engine {service.engine.kind} {version}")
    executable = adapter.install(version, cache_dir=settings.cache_dir, progress=progress)
    model_path: Path | None = None
    if adapter.needs_model_file:
        progress(f"{name}: model {service.model.source}")
        resolved = ModelStore(settings.cache_dir).resolve(
            service.model, base_dir=spec_dir, progress=progress, verify=verify_model
        )
        model_path = resolved.path
        if resolved.sha256 is not None and resolved.path is not None:
            store.record_artifact(
                kind="model",
                key=service.model.source,
                sha256=resolved.sha256,
                size=resolved.size,
                path=str(resolved.path),
            )
    return Prepared(name, service, adapter, executable, model_path)


def replica_spec(environment: str, slot: int, prepared: Prepared) -> ReplicaSpec:
    """The ReplicaSpec for one new replica of a prepared service; pure but for its id
    and ``prepared.replica_env`` (an agent replica's key is created here)."""
    service, adapter = prepared.service, prepared.adapter
    launch = adapter.local_command(
        service,
        executable=prepared.executable,
        model_path=prepared.model_path,
        served_name=prepared.name,
    )
    busy = tuple(s for s in (adapter.metrics.running_series, adapter.metrics.queue_series) if s)
    replica_id = f"{environment}-{prepared.name}-{slot}-{secrets.token_hex(3)}"
    if prepared.replica_env is not None:
        launch = replace(launch, env={**launch.env, **prepared.replica_env(replica_id)})
    probes = health_probes(service) or embedding_probes(service) or tuple(adapter.readiness)
    return ReplicaSpec(
        replica_id=replica_id,
        environment=environment,
        service=prepared.name,
        slot=slot,
        runtime_hash=service.runtime_hash(),
        engine=str(service.engine.kind),
        engine_version=service.engine.version,
        launch=launch,
        readiness=probes,
        liveness=probes[0] if service.agent is not None else adapter.liveness,
        metrics_path=adapter.metrics_path,
        served_name=prepared.name,
        config=runtime_config(service),
        busy_series=busy,
        labels=dict(service.labels),
    )
