"""What a spec change does to the indexes: a rebuild when the embedding model changes; pure.

An index records the identity of the model its vectors came from (``model_identity``).
When the spec's embedding service now runs another model (another source,
checksum or conversion, or another dimension), the index must be emptied and
filled again: vectors of two models are not comparable, so they are never
mixed. ``plan`` shows that as ``-/+ index NAME``; ``llmfleet ingest PIPELINE
--rebuild`` carries it out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from llmfleet.spec.model import ServiceSpec
from llmfleet.spec.rag import IndexSpec


def model_identity(service: ServiceSpec, index: IndexSpec) -> str:
    """What makes two vectors comparable: the model's weights, as written, and the dimension."""
    model = service.model.model_dump(mode="json")
    return json.dumps({**model, "dimension": index.dimension}, sort_keys=True)


def describe_identity(identity: str) -> str:
    """A recorded identity as a person reads it: ``SOURCE (384 dimensions)``."""
    try:
        body = json.loads(identity)
        return f"{body['source']} ({body['dimension']} dimensions)"
    except (ValueError, KeyError, TypeError):
        return identity


@dataclass(frozen=True, slots=True)
class IndexChange:
    """``-/+`` rebuild, or ``+`` an index not filled yet; ``reason`` says why."""

    index: str
    symbol: str
    reason: str
    pipelines: tuple[str, ...]


def plan_index(
    name: str, *, desired: str, recorded: str | None, pipelines: tuple[str, ...]
) -> IndexChange | None:
    """The change ``name`` needs, or None when its vectors are the desired model's."""
    runs = ", ".join(f"llmfleet ingest {p}" for p in pipelines) or "no pipeline fills it"
    if recorded is None:
        return IndexChange(name, "+", f"not filled yet ({runs})", pipelines)
    if recorded == desired:
        return None
    reason = (
        f"rebuild: embedding model {describe_identity(recorded)} -> "
        f"{describe_identity(desired)}; every document is embedded again "
        f"({runs} --rebuild)"
    )
    return IndexChange(name, "-/+", reason, pipelines)
