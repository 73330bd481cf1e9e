"""examples/rag.yaml, the docs assistant: it checks, passes the JSON Schema, and can run
beside the quickstart (same folder, so other environments, port and state file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from llmfleet.spec import fleet_json_schema, load_spec
from llmfleet.spec.model import EngineKind

EXAMPLES = Path(__file__).parents[2] / "examples"
RAG, QUICKSTART = EXAMPLES / "rag.yaml", EXAMPLES / "quickstart.yaml"


def test_rag_example_validates_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(fleet_json_schema())
    assert [e.message for e in validator.iter_errors(yaml.safe_load(RAG.read_text()))] == []


def test_rag_example_checks() -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "llmfleet", "check", "-f", str(RAG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok docs: 3 services, 3 replicas, gateway 127.0.0.1:8090" in checked.stdout


def test_rag_example_wires_chat_embeddings_index_pipeline_and_agent() -> None:
    loaded = load_spec(RAG)
    docs = loaded.resolved.environment("docs")
    assert (
        docs.services["chat"].model.source
        == load_spec(QUICKSTART).resolved.environment("production").services["chat"].model.source
    )
    assert "--embeddings" in docs.services["embed"].engine.args
    agent = docs.services["docs-assistant"]
    assert agent.engine.kind is EngineKind.AGENT and agent.agent is not None
    assert agent.agent.entrypoint == "llmfleet.examples.docs_assistant:app"
    assert agent.agent.models == ("chat", "embed")
    assert agent.agent.index_uris == {"docs": ".llmfleet/indexes/docs/docs"}
    index, pipeline = loaded.spec.indexes["docs"], loaded.spec.pipelines["docs"]
    assert (index.embedding, index.dimension) == ("embed", 384)
    assert (pipeline.source, pipeline.index) == ("s3://llmfleet-docs/llmfleet", "docs")


def test_rag_example_runs_beside_the_quickstart() -> None:
    rag, quick = load_spec(RAG).resolved, load_spec(QUICKSTART).resolved
    assert rag.state != quick.state
    assert not set(rag.environments) & set(quick.environments)
    ports = {e.gateway.port for e in quick.environments.values()}
    assert rag.environment("docs").gateway.port not in ports
