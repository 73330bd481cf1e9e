"""The real all-MiniLM-L6-v2 embedding model, loaded offline from its PyPI package."""

from __future__ import annotations

import pytest

from llmfleet.validate.similarity import Embedder


def test_minilm_similarity_matches_sentence_transformers() -> None:
    """Published sentence-transformers figure: 0.7553 for these two sentences."""
    embedder = Embedder.load()
    close = embedder.similarity("A man is eating food.", "A man is eating a piece of bread.")
    far = embedder.similarity("A man is eating food.", "A man is riding a horse.")
    assert close == pytest.approx(0.7553, abs=1e-3)
    assert far < 0.4
