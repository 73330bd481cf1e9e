"""An agent validated like a model: its golden tasks check the answer, the documents it
retrieved and the tools it called; ``llmfleet validate`` runs them on the candidate in
staging (against staging's models and staging's own index, filled there by the pipeline)
and on production's agent, and gates the promote.

Real parts: the fleet's gateway and local agent, llama-server with all-MiniLM-L6-v2 as
the embedding service, LanceDB, the sim engine as the chat model, and a real ASGI agent
(``tests/agents/retrieving_agent.py``) served by uvicorn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from llmfleet.models.store import ModelStore
from llmfleet.validate.similarity import Embedder, ServedSimilarity
from tests.fixtures.engines import REAL_TIMEOUT_S
from tests.fixtures.fleet import Fleet
from tests.rag.conftest import MINILM

REPO = Path(__file__).resolve().parents[2]
SPEC = f"""
services:
  chat:
    model: sim:tiny
    engine: {{kind: sim, version: "1.2.0"}}
  embed:
    model:
      source: {MINILM.source}
      convert: bert-gguf
    engine: {{kind: llamacpp, version: "11434.0.0", args: [--embeddings]}}
    slots: 2
    context: 512
indexes:
  docs: {{embedding: embed, dimension: 384}}
pipelines:
  docs: {{source: handbook, include: ["**/*.md"], index: docs}}
agents:
  docs-assistant:
    entrypoint: tests.agents.retrieving_agent:app
    python_path: ["{REPO}"]
    models: [chat, embed]
    indexes: [docs]
    env: {{AGENT_MODEL: chat, EMBED_MODEL: embed, RETRIEVAL: best}}
    health_path: /healthz
    validation:
      quality: agent-suite.yaml
      speed: null
      similarity: embed
environments:
  production: {{gateway: {{port: GATEWAY_PORT}}}}
  staging: {{gateway: {{port: STAGING_PORT}}}}
"""
HANDBOOK = {
    "rollback.md": "# Rolling back\n\nTo roll back a bad release, run llmfleet rollback: it "
    "restores the previous revision of the fleet.",
    "keys.md": "# API keys\n\nEach API key is scoped to the services it may call; a call to "
    "any other service is refused with 403.",
    "gpus.md": "# GPUs\n\nReplicas are placed on GPUs by their memory; a model too large for "
    "one GPU is split across several.",
    "ingest.md": "# Ingestion\n\nPipelines read documents from object storage, cut them into "
    "chunks and embed them into an index.",
}
SUITE = """
cases:
  - name: roll-back
    prompt: How do I roll back a bad release?
    checks:
      - regex: "\\\\w"
      - retrieved: rollback.md
        top_k: 1
      - called: search_docs
        arguments: {index: docs}
      - similar_to: Run llmfleet rollback to restore the previous revision.
        min_similarity: -1
  - name: key-scope
    prompt: Which services can an API key call?
    checks:
      - retrieved: keys.md
        top_k: 2
"""


PAIRS = [
    ("How do I roll back?", "Run llmfleet rollback to restore the previous revision."),
    ("The cat sleeps on the mat.", "Quarterly revenue rose by four percent."),
]


@pytest.fixture
def minilm(shared_cache_dir: Path) -> None:
    """all-MiniLM-L6-v2 converted to GGUF in the shared cache, as apply will find it."""
    ModelStore(shared_cache_dir).resolve(MINILM, base_dir=Path.cwd())


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_an_agent_that_retrieves_worse_fails_the_gate(
    fleet: Fleet, llama_server_bin: Path, minilm: None
) -> None:
    """A candidate agent that retrieves as well as production's passes; one whose
    retrieval ranks the wrong documents first answers, calls its tool, and still fails:
    its expected sources are missing from its top k where production's are found;
    staging got its own index from the pipeline; promote is refused and production
    keeps its agent. Its similar_to checks were judged by the fleet's embedding
    service, which agrees with the reference model."""
    fleet.write(SPEC)
    (fleet.root / "agent-suite.yaml").write_text(SUITE)
    (fleet.root / "handbook").mkdir()
    for name, text in HANDBOOK.items():
        (fleet.root / "handbook" / name).write_text(text)
    fleet.run("apply", "--yes")
    fleet.run("ingest", "docs")
    before = {r.replica_id for r in fleet.ready() if r.service == "docs-assistant"}

    fleet.write(SPEC.replace("RETRIEVAL: best", 'RETRIEVAL: best, EDITION: "2"'))
    good = fleet.run("validate", "docs-assistant").stdout
    assert "validation passed" in good and "retrieval hit rate vs production" in good
    assert "to staging, with what it needs: chat, embed\n" in good

    fleet.write(SPEC.replace("RETRIEVAL: best", 'RETRIEVAL: reversed, EDITION: "2"'))
    failed = fleet.run("validate", "docs-assistant", check=False)
    out = failed.stdout + failed.stderr
    assert failed.returncode == 3, out
    assert "retrieval hit rate vs production" in out and "FAIL" in out
    assert "ingesting docs into staging's index docs" in out
    report_path = sorted((fleet.home / "reports").glob("*/report.json"))[-1]
    (agent,) = json.loads(report_path.read_text())["services"]
    assert agent["retrieval"] == {"candidate": 0.0, "production": 1.0}
    production_cases = {c["name"]: c for c in agent["quality"]["production"]}
    assert production_cases["roll-back"]["passed"], production_cases
    assert production_cases["roll-back"]["sources"][0] == "rollback.md"
    assert production_cases["roll-back"]["tool_calls"] == ["search_docs"]
    candidate = {c["name"]: c for c in agent["quality"]["candidate"]}
    assert [f.split(":")[0] for f in candidate["roll-back"]["failures"]] == ["retrieved"]
    page = report_path.with_name("report.html").read_text()
    assert "retrieved: rollback.md" in page and "called: search_docs" in page
    assert (fleet.root / ".llmfleet/indexes/staging/docs").is_dir()
    assert not fleet.replicas("staging")
    assert agent["similarity"] == "the fleet's service embed (production's gateway)"
    served = ServedSimilarity(base_url=f"http://127.0.0.1:{fleet.gateway_port}", model="embed")
    reference = Embedder.load()
    try:
        for first, second in PAIRS:
            assert served(first, second) == pytest.approx(
                reference.similarity(first, second), abs=0.02
            )
    finally:
        served.close()

    streamed = _stream(fleet, "How do I roll back a bad release?")
    assert streamed["sources"][0]["filename"] == "rollback.md"
    assert streamed["tool_calls"][0]["function"]["name"] == "search_docs"

    refused = fleet.run("promote", check=False)
    assert refused.returncode != 0 and "docs-assistant" in refused.stderr
    after = {r.replica_id for r in fleet.ready() if r.service == "docs-assistant"}
    assert after == before


def _stream(fleet: Fleet, question: str) -> dict[str, Any]:
    """The ``llmfleet`` report of a streamed answer through the gateway, read by the
    ``openai`` client from the last chunk (the one with finish_reason), as documented."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{fleet.gateway_port}/v1", api_key="none")
    chunks = list(
        client.chat.completions.create(
            model="docs-assistant", messages=[{"role": "user", "content": question}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks).endswith("rollback.md")
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra is not None
    report: dict[str, Any] = last.model_extra["llmfleet"]
    return report
