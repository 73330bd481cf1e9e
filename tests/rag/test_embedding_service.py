"""all-MiniLM-L6-v2, converted to GGUF at fetch time, served by the real llama-server."""

from __future__ import annotations

import numpy as np
import pytest

from llmfleet.rag.embedding import EmbeddingClient
from llmfleet.validate.similarity import Embedder
from tests.fixtures.engines import REAL_TIMEOUT_S

TEXTS = [
    "How do I roll back to an earlier revision?",
    "The gateway retries a failed request on another replica before the first byte.",
    "llmfleet plan shows + create, ~ update, -/+ replace and - delete.",
    "Café, naïve, résumé: accents and UNICODE — dashes too!",
    "x",
    "def pick_replica(replicas): return min(replicas, key=lambda r: r.load)",
    "Prometheus scrapes the fleet endpoint; Grafana shows the dashboard. " * 6,
    "12345 67890 3.14159 2026-12-05",
]


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_served_vectors_agree_with_the_numpy_reference(embedding_url: str) -> None:
    """Each vector from llama-server has cosine >= 0.99 with validate.similarity's numpy
    BERT on the same text, and the client checks the dimension."""
    client = EmbeddingClient(embedding_url, model="embed", dimension=384)
    try:
        served = client.embed(TEXTS)
    finally:
        client.close()
    reference = Embedder.load()
    for text, vector in zip(TEXTS, served, strict=True):
        mine = np.asarray(vector, dtype=np.float32)
        cosine = float(mine @ reference.embed(text) / np.linalg.norm(mine))
        assert cosine >= 0.99, (text, cosine)


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_a_wrong_dimension_is_refused(embedding_url: str) -> None:
    """An index of 768 dimensions is never fed 384-number vectors."""
    from llmfleet.errors import IngestError

    client = EmbeddingClient(embedding_url, model="embed", dimension=768)
    try:
        with pytest.raises(IngestError, match="384 numbers; the index wants 768"):
            client.embed(["hello"])
    finally:
        client.close()
