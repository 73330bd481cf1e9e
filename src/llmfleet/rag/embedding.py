"""The embedding service as a pipeline calls it: OpenAI's ``/v1/embeddings`` over HTTP.

Through the fleet's gateway normally (``llmfleet ingest``), or straight at a
replica (bench/, tests). Every vector is checked against the index's dimension,
so a wrong model is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from llmfleet.errors import IngestError


@dataclass
class EmbeddingClient:
    """Embeds texts with ``model`` at ``base_url``; one ``httpx.Client`` for the run."""

    base_url: str
    model: str
    dimension: int
    api_key: str | None = None
    timeout_s: float = 120.0
    _client: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url.rstrip("/"), headers=headers, timeout=self.timeout_s
        )

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; ``IngestError`` when the service cannot."""
        try:
            reply = self._client.post(
                "/v1/embeddings", json={"model": self.model, "input": list(texts)}
            )
        except httpx.HTTPError as exc:
            raise IngestError(
                f"the embedding service '{self.model}' at {self.base_url} did not answer: {exc}",
                hint="apply the fleet first (llmfleet apply), and check llmfleet status",
            ) from exc
        if reply.status_code != 200:
            raise IngestError(
                f"the embedding service '{self.model}' answered {reply.status_code}: "
                f"{reply.text[:300]}"
            )
        data = sorted(reply.json()["data"], key=lambda item: int(item["index"]))
        vectors = [[float(x) for x in item["embedding"]] for item in data]
        if len(vectors) != len(texts):
            raise IngestError(
                f"asked {len(texts)} embeddings of '{self.model}', got {len(vectors)}"
            )
        wrong = next((len(v) for v in vectors if len(v) != self.dimension), None)
        if wrong is not None:
            raise IngestError(
                f"the service '{self.model}' gives vectors of {wrong} numbers; the index "
                f"wants {self.dimension}",
                hint="set the index's dimension to the model's, which means a rebuild",
            )
        return vectors
