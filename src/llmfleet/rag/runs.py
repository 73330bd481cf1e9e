"""A pipeline of the spec made ready to run in one environment: source, index, embedder.

The spec's names are followed here (pipeline -> index -> embedding service),
the index's location is resolved against the spec's folder, and the embedding
service is reached through the environment's gateway.
"""

from __future__ import annotations

from pathlib import Path

from llmfleet.errors import FleetError
from llmfleet.rag.embedding import EmbeddingClient
from llmfleet.rag.index import VectorIndex
from llmfleet.rag.planning import IndexChange, model_identity, plan_index
from llmfleet.spec.model import FleetSpec, ResolvedEnvironment
from llmfleet.spec.rag import S3_SCHEME, IndexSpec, PipelineSpec


def index_uri(spec_dir: Path, name: str, index: IndexSpec, *, environment: str) -> str:
    """Where the index lives in ``environment``: an ``s3://`` URI or an absolute folder."""
    where = index.location(name=name, environment=environment)
    return where if where.startswith(S3_SCHEME) else str((spec_dir / where).resolve())


def pipeline_of(spec: FleetSpec, name: str) -> PipelineSpec:
    if name not in spec.pipelines:
        import difflib

        close = difflib.get_close_matches(name, spec.pipelines, n=1)
        known = ", ".join(sorted(spec.pipelines)) or "none"
        hint = f"did you mean '{close[0]}'?" if close else f"pipelines: {known}"
        raise FleetError(f"no pipeline '{name}' in the spec", hint=hint)
    return spec.pipelines[name]


def open_index(spec: FleetSpec, spec_dir: Path, name: str, *, environment: str) -> VectorIndex:
    """The index ``name`` of ``environment``, created empty if it does not exist."""
    index = spec.indexes[name]
    uri = index_uri(spec_dir, name, index, environment=environment)
    return VectorIndex.open(uri, dimension=index.dimension)


def recorded_identity(
    spec: FleetSpec, spec_dir: Path, name: str, *, environment: str
) -> str | None:
    """The model the index holds; None for one never filled. Creates nothing."""
    uri = index_uri(spec_dir, name, spec.indexes[name], environment=environment)
    if not uri.startswith(S3_SCHEME) and not Path(uri).exists():
        return None  # LanceDB's connect would make the folder
    return VectorIndex.recorded_identity(uri)


def embedder_for(
    env: ResolvedEnvironment, index: IndexSpec, *, api_key: str | None
) -> EmbeddingClient:
    gateway = env.gateway
    host = "127.0.0.1" if gateway.host in ("0.0.0.0", "::") else gateway.host
    return EmbeddingClient(
        f"http://{host}:{gateway.port}",
        model=index.embedding,
        dimension=index.dimension,
        api_key=api_key,
    )


def plan_indexes(spec: FleetSpec, env: ResolvedEnvironment, spec_dir: Path) -> list[IndexChange]:
    """What each index of ``env`` needs for the spec's embedding models (reads the indexes)."""
    changes = []
    for name, index in sorted(spec.indexes.items()):
        recorded = recorded_identity(spec, spec_dir, name, environment=env.name)
        desired = model_identity(env.services[index.embedding], index)
        fillers = tuple(sorted(p for p, body in spec.pipelines.items() if body.index == name))
        change = plan_index(name, desired=desired, recorded=recorded, pipelines=fillers)
        if change is not None:
            changes.append(change)
    return changes
