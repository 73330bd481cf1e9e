"""Probes shared by engines that serve the OpenAI API (chat, or embeddings only); pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmfleet.engines.base import Probe
from llmfleet.spec.model import EngineKind, ServiceSpec

ONE_TOKEN_CHAT: Mapping[str, Any] = {
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 1,
    "temperature": 0,
}

HEALTH = Probe("/health")

OPENAI_READINESS: tuple[Probe, ...] = (
    HEALTH,
    Probe("/v1/chat/completions", body=ONE_TOKEN_CHAT, timeout_s=30.0),
)
"""``/health`` first (llama-server answers 503 while loading), then a real one-token
generation: an engine whose HTTP thread answers while its core is dead fails it.

A chat message rather than a cheaper one-token completion: it warms the slot's cache
with the chat template's opening (SmolLM2's adds a system prompt), as every later chat
request starts. With a one-token completion probe instead, a resumed answer's prefill
was split differently from the uninterrupted run's and, at temperature 0, the two
differed (tests/e2e/test_quickstart_fleet.py, the one-replica restart)."""

EMBEDDING_FLAGS = frozenset({"--embedding", "--embeddings"})
"""llama-server flags that make it an embedding server: it then refuses generation
("the current context does not support logits computation"), so the chat probe
would keep it unready for ever."""
EMBEDDING_READINESS: tuple[Probe, ...] = (
    HEALTH,
    Probe("/v1/embeddings", body={"input": "ready"}, timeout_s=30.0),
)
"""``/health``, then one real embedding: the proof that the model computes."""


def embedding_probes(service: ServiceSpec) -> tuple[Probe, ...] | None:
    """Readiness of a llama-server started as an embedding server; None for others."""
    if service.engine.kind is EngineKind.LLAMACPP and EMBEDDING_FLAGS & set(service.engine.args):
        return EMBEDDING_READINESS
    return None
