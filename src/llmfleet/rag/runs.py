"""A pipeline of the spec made ready to run in one environment: source, index, embedder.

The spec's names are followed here (pipeline -> index -> embedding service),
the index's location is resolved against the spec's folder, and the embedding
service is reached through the environment's gateway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from llmfleet.errors import FleetError, IngestError
from llmfleet.rag.embedding import EmbeddingClient
from llmfleet.rag.index import Index
from llmfleet.rag.planning import IndexChange, model_identity, plan_index
from llmfleet.rag.stores import open_location, read_identity
from llmfleet.spec.model import FleetSpec, ResolvedEnvironment
from llmfleet.spec.rag import PGVECTOR_SCHEME, S3_SCHEME, IndexSpec, PipelineSpec


def index_uri(spec_dir: Path, name: str, index: IndexSpec, *, environment: str) -> str:
    """Where the index lives in ``environment``: an ``s3://`` or ``pgvector://`` location,
    or an absolute folder."""
    where = index.location(name=name, environment=environment)
    if where.startswith((S3_SCHEME, PGVECTOR_SCHEME)):
        return where
    return str((spec_dir / where).resolve())


def pipeline_of(spec: FleetSpec, name: str) -> PipelineSpec:
    if name not in spec.pipelines:
        import difflib

        close = difflib.get_close_matches(name, spec.pipelines, n=1)
        known = ", ".join(sorted(spec.pipelines)) or "none"
        hint = f"did you mean '{close[0]}'?" if close else f"pipelines: {known}"
        raise FleetError(f"no pipeline '{name}' in the spec", hint=hint)
    return spec.pipelines[name]


def open_index(
    spec: FleetSpec,
    spec_dir: Path,
    name: str,
    *,
    environment: str,
    environ: Mapping[str, str] | None = None,
) -> Index:
    """The index ``name`` of ``environment``, created empty if it does not exist; a
    pgvector index's URL is read from ``environ`` (default: this process's environment)."""
    index = spec.indexes[name]
    uri = index_uri(spec_dir, name, index, environment=environment)
    return open_location(
        uri, dimension=index.dimension, environ=os.environ if environ is None else environ
    )


def recorded_identity(
    spec: FleetSpec,
    spec_dir: Path,
    name: str,
    *,
    environment: str,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The model the index holds; None for one never filled. Creates nothing."""
    uri = index_uri(spec_dir, name, spec.indexes[name], environment=environment)
    if not uri.startswith((S3_SCHEME, PGVECTOR_SCHEME)) and not Path(uri).exists():
        return None  # LanceDB's connect would make the folder
    return read_identity(uri, environ=os.environ if environ is None else environ)


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
        desired = model_identity(env.services[index.embedding], index)
        fillers = tuple(sorted(p for p, body in spec.pipelines.items() if body.index == name))
        try:
            recorded = recorded_identity(spec, spec_dir, name, environment=env.name)
        except IngestError as exc:  # e.g. a pgvector URL not set here: plan the rest
            changes.append(IndexChange(name, "?", f"cannot read it: {exc}", fillers))
            continue
        change = plan_index(name, desired=desired, recorded=recorded, pipelines=fillers)
        if change is not None:
            changes.append(change)
    return changes
