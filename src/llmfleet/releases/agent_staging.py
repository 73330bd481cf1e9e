"""A candidate agent in staging: the services it needs there, and staging's own indexes.

An agent is validated against staging's models and staging's index, never
production's: staging runs the agent with the services it calls (``models:``,
and theirs when it calls agents) and its indexes' embedding services, and its
indexes are filled there from the pipelines that fill them in production
(incrementally, so a second validation re-embeds only what changed). The
agent's replica then finds staging's index in ``LLMFLEET_INDEX_<NAME>`` and its
key reaches staging's gateway only.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmfleet.rag.ingest import Ingestion, IngestReport
from llmfleet.rag.planning import model_identity
from llmfleet.rag.runs import embedder_for, index_uri, open_index, recorded_identity
from llmfleet.rag.sources import open_source
from llmfleet.releases.context import PRODUCTION, STAGING, ReleaseContext
from llmfleet.spec.model import FleetSpec, ResolvedEnvironment


def with_dependencies(
    environment: ResolvedEnvironment, spec: FleetSpec, chosen: Sequence[str]
) -> list[str]:
    """``chosen`` and, for each agent among them, every service it needs to answer, in
    the order found; pure."""
    needed = list(chosen)
    for name in needed:  # grows while read: an agent's agents bring their own
        agent = environment.services[name].agent if name in environment.services else None
        if agent is None:
            continue
        embedders = [spec.indexes[i].embedding for i in agent.indexes if i in spec.indexes]
        needed += [m for m in dict.fromkeys((*agent.models, *embedders)) if m not in needed]
    return needed


def agent_indexes(environment: ResolvedEnvironment, names: Sequence[str]) -> list[str]:
    """The indexes the agents among ``names`` read, each once; pure."""
    found: list[str] = []
    for name in names:
        agent = environment.services[name].agent
        if agent is not None:
            found += [i for i in agent.indexes if i not in found]
    return found


def fill_staging_indexes(
    ctx: ReleaseContext,
    staging: ResolvedEnvironment,
    names: Sequence[str],
    *,
    api_key: str | None,
) -> list[IngestReport]:
    """Run, into staging's indexes, each pipeline that fills an index the agents among
    ``names`` read, through staging's embedding service. Staging's index is a copy to
    test with: one that holds another model's vectors is rebuilt. An index whose
    location is the same in both environments (its ``uri`` has no ``{environment}``)
    is production's own, so it is read as it is and never written."""
    spec, spec_dir = ctx.loaded.spec, ctx.spec_dir
    reports = []
    for index_name in agent_indexes(staging, names):
        index_spec = spec.indexes[index_name]
        here = index_uri(spec_dir, index_name, index_spec, environment=STAGING)
        if here == index_uri(spec_dir, index_name, index_spec, environment=PRODUCTION):
            ctx.progress(
                f"index {index_name} is production's own (its uri has no {{environment}}): "
                "the candidate reads it as it is"
            )
            continue
        identity = model_identity(staging.services[index_spec.embedding], index_spec)
        recorded = recorded_identity(spec, spec_dir, index_name, environment=STAGING)
        for pipeline_name, pipeline in sorted(spec.pipelines.items()):
            if pipeline.index != index_name:
                continue
            ctx.progress(f"ingesting {pipeline_name} into staging's index {index_name}")
            embedder = embedder_for(staging, index_spec, api_key=api_key)
            try:
                report = Ingestion(
                    name=pipeline_name,
                    pipeline=pipeline,
                    source=open_source(pipeline.source, base_dir=spec_dir),
                    index=open_index(spec, spec_dir, index_name, environment=STAGING),
                    embedder=embedder,
                    model_identity=identity,
                ).run(rebuild=recorded is not None and recorded != identity)
            finally:
                embedder.close()
            recorded = identity
            ctx.progress(
                f"ingested {pipeline_name}: {report.added + report.changed} documents embedded, "
                f"{report.unchanged} unchanged, {report.removed} removed, "
                f"{len(report.skipped)} skipped; {report.chunks_in_index} chunks in the index"
            )
            reports.append(report)
    return reports
