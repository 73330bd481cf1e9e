"""Ingestion metrics for the fleet endpoint, read from the reports ``llmfleet ingest`` leaves.

Each run writes ``HOME/ingest/ENVIRONMENT/PIPELINE.json`` (its report); the agent
reads them at each scrape, so the figures of the last run of every pipeline are
in the same Prometheus endpoint as the replicas' and the gateways'. Lag is
``time() - llmfleet_ingest_last_run_timestamp_seconds`` in PromQL. A report that
cannot be read is left out (a run is writing it: it is replaced by a rename).
"""

from __future__ import annotations

import json
from pathlib import Path

from llmfleet.observe.exposition import Sample

INGEST_FOLDER = "ingest"
_GAUGES = {
    "llmfleet_ingest_documents": "listed",
    "llmfleet_ingest_chunks": "chunks_in_index",
    "llmfleet_ingest_chunks_written": "chunks_written",
    "llmfleet_ingest_documents_changed": "changed",
    "llmfleet_ingest_documents_added": "added",
    "llmfleet_ingest_documents_removed": "removed",
    "llmfleet_ingest_last_run_seconds": "seconds",
    "llmfleet_ingest_last_run_timestamp_seconds": "finished_at",
}


def ingestion_samples(home: Path) -> list[Sample]:
    """Gauges of the last run of each pipeline, labelled environment and pipeline."""
    out: list[Sample] = []
    for path in sorted((home / INGEST_FOLDER).glob("*/*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        labels = (("environment", path.parent.name), ("pipeline", path.stem))
        for name, field in _GAUGES.items():
            value = report.get(field)
            if isinstance(value, int | float):
                out.append(Sample(name, "gauge", name, labels, float(value)))
        failures = float(len(report.get("skipped") or ()))
        out.append(
            Sample(
                "llmfleet_ingest_failures", "gauge", "llmfleet_ingest_failures", labels, failures
            )
        )
    return out
