"""Names that indexes and pipelines give each other and the services; pure.

An index names the service that embeds its documents; a pipeline names its
index and, optionally, the embedding service, which must then be the index's:
an index holds the vectors of one model only.
"""

from __future__ import annotations

from llmfleet.spec.model import FleetSpec
from llmfleet.spec.problems import Finding, unknown_name


def rag_references(spec: FleetSpec) -> list[Finding]:
    """Every reference of ``indexes:`` and ``pipelines:`` that names nothing, or the wrong thing."""
    findings = [
        Finding(
            ("indexes", name, "embedding"), unknown_name("service", index.embedding, spec.services)
        )
        for name, index in spec.indexes.items()
        if index.embedding not in spec.services
    ]
    for name, pipeline in spec.pipelines.items():
        index = spec.indexes.get(pipeline.index)
        if index is None:
            message = unknown_name("index", pipeline.index, spec.indexes)
            findings.append(Finding(("pipelines", name, "index"), message))
        elif pipeline.embedding not in (None, index.embedding):
            message = (
                f"the index '{pipeline.index}' holds vectors of the service '{index.embedding}', "
                f"not '{pipeline.embedding}' (an index never mixes two models' vectors); "
                "leave embedding out, or change the index's and rebuild it"
            )
            findings.append(Finding(("pipelines", name, "embedding"), message))
    return findings
