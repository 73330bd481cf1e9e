"""Probes shared by engines that serve the OpenAI API; pure data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmfleet.engines.base import Probe

ONE_TOKEN: Mapping[str, Any] = {"prompt": "hi", "max_tokens": 1, "temperature": 0}
"""A completion of a one-token prompt: a real generation at its cheapest. A chat
message would go through the model's template first (SmolLM2's adds a system
prompt: 31 tokens, 0.4 s of prefill on one thread while the engine warms up)."""

HEALTH = Probe("/health")

OPENAI_READINESS: tuple[Probe, ...] = (
    HEALTH,
    Probe("/v1/completions", body=ONE_TOKEN, timeout_s=30.0),
)
"""``/health`` first (llama-server answers 503 while loading), then a real one-token
generation: an engine whose HTTP thread answers while its core is dead fails it."""
