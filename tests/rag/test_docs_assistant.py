"""examples/rag.yaml as shipped, for real: SmolLM2 and all-MiniLM-L6-v2 on llama-server,
documents in SeaweedFS's S3, the LanceDB index, and the docs-assistant agent reached
through the gateway by the openai client and by ``llmfleet ask``."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from llmfleet.rag.seaweed import S3Server
from llmfleet.validate.answers import Source, read_answer
from tests.fixtures.engines import REAL_TIMEOUT_S
from tests.fixtures.fleet import Fleet

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rag.yaml"
DOCUMENTS = {
    "llmfleet/ops/rollback.md": "# Rollback\n\nllmfleet rollback puts production back to the "
    "previous recorded revision; --to SERIAL picks an older one.",
    "llmfleet/ops/keys.md": "# API keys\n\nllmfleet keys create makes a key for the gateway; "
    "keys are stored as SHA-256 hashes and can be revoked.",
    "llmfleet/costs.txt": "Costs: llmfleet costs shows dollars per hour and per month for "
    "each environment, from the prices in the spec.",
}


def _ask(client: openai.OpenAI, question: str, *, stream: bool) -> tuple[str, list[dict], dict]:
    """The answer's text, its reported sources (the last chunk's when streamed) and the
    answer as one chat.completion body."""
    messages = [{"role": "user", "content": question}]
    if not stream:
        answer = client.chat.completions.create(
            model="docs-assistant",
            messages=messages,
            max_tokens=12,
        )
        extra = answer.model_extra or {}
        body = answer.model_dump()
        return answer.choices[0].message.content or "", extra["llmfleet"]["sources"], body
    chunks = list(
        client.chat.completions.create(
            model="docs-assistant",
            messages=messages,
            max_tokens=12,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    report = (chunks[-1].model_extra or {})["llmfleet"]
    assert report["tool_calls"] == []
    body = {"choices": [{"message": {"content": text}}], "llmfleet": report}
    return text, report["sources"], body


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_the_rag_example_answers_from_its_index_with_citations(
    fleet: Fleet,
    s3_server: S3Server,
    llama_server_bin: Path,
    smollm_model: Path,
    minilm_gguf: Path,
) -> None:
    """The shipped spec applies as is (its gateway port moved to a free one); before any
    ingestion the agent says its index is empty; after ``ingest`` from S3 its answer,
    streamed or not, cites the document that answers first and carries every retrieved
    chunk as llmfleet.sources; ``llmfleet ask`` prints the citations."""
    fleet.write(EXAMPLE.read_text().replace("port: 8090", "port: GATEWAY_PORT"))
    bucket = s3_server.client()
    bucket.create_bucket(Bucket="llmfleet-docs")
    for key, body in DOCUMENTS.items():
        bucket.put_object(Bucket="llmfleet-docs", Key=key, Body=body.encode())
    fleet.run("apply", "-e", "docs", "--yes")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{fleet.gateway_port}/v1", api_key="x")

    text, sources, _ = _ask(client, "How do I roll back?", stream=False)
    assert "has no documents yet" in text and "llmfleet ingest" in text and sources == []

    fleet.run("ingest", "-e", "docs", "docs", env=s3_server.env())
    text, sources, last = _ask(client, "How do I roll back?", stream=True)
    assert text.split("Sources:\n")[1].startswith('[1] ops/rollback.md: "llmfleet rollback puts')
    assert [s["filename"] for s in sources][:1] == ["ops/rollback.md"]
    scores = [s["score"] for s in sources]
    assert len(sources) == 3 and scores == sorted(scores, reverse=True)
    assert read_answer(last).sources == tuple(  # as llmfleet validate reads an agent
        Source(s["filename"], s["score"]) for s in sources
    )
    text, sources, _ = _ask(client, "Where are API keys kept?", stream=False)
    assert "[1] ops/keys.md" in text and sources[0]["filename"] == "ops/keys.md"

    asked = fleet.run("ask", "-e", "docs", "docs-assistant", "What does it cost per month?")
    assert '[1] costs.txt: "Costs: llmfleet costs shows dollars' in asked.stdout
