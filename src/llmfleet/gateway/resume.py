"""Continuing an answer on another replica; pure.

When a replica dies or stalls after the first byte, the gateway sends the
original request again with the text produced so far as a final assistant
message (chat) or appended to the prompt (completions), asks only for the
tokens still allowed, and splices the new answer onto the old one:

* the engine may echo the prefilled text first (llama-server and the sim do);
  ``EchoStripper`` drops exactly that echo, nothing more;
* every chunk keeps the id, ``created`` and model of the first response;
* usage is merged: prompt tokens of the original request (the resumed request's
  prompt minus the prefill), completion tokens summed over the segments.

``StreamState`` holds all of that for one request and turns upstream SSE
payloads into what the client gets; it never does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llmfleet.spec.model import EngineKind

DEFAULT_CONTINUATION: dict[str, dict[str, Any]] = {
    EngineKind.LLAMACPP: {},
    EngineKind.SIM: {},
    EngineKind.VLLM: {"continue_final_message": True, "add_generation_prompt": False},
}
"""Used when the snapshot carries no continuation fields for a service."""

_NOT_RESUMABLE_FIELDS = ("tools", "functions", "tool_choice", "logprobs", "echo", "best_of")


def is_resumable(chat: bool, body: Mapping[str, Any]) -> bool:
    """Whether the gateway can splice a continuation of this request; pure.

    One choice of plain text only: tool calls, log-probabilities and echoed
    prompts are not continued (those requests still get retries before the
    first byte).
    """
    if body.get("n", 1) != 1 or any(body.get(f) for f in _NOT_RESUMABLE_FIELDS):
        return False
    return chat or isinstance(body.get("prompt"), str)


def upstream_body(body: Mapping[str, Any], *, served_name: str) -> dict[str, Any]:
    """The body sent upstream: always streamed, always with usage; pure."""
    out = dict(body)
    out["stream"] = True
    out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    if served_name:
        out["model"] = served_name
    return out


def continuation_body(
    chat: bool,
    body: Mapping[str, Any],
    *,
    text: str,
    tokens: int,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """The original request continued after ``text`` (``tokens`` already produced); pure."""
    out = dict(body)
    if chat:
        out["messages"] = [*body["messages"], {"role": "assistant", "content": text}]
        out.update(fields)
    else:
        out["prompt"] = body["prompt"] + text
    for key in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(key), int):
            out[key] = max(0, body[key] - tokens)
    return out


class EchoStripper:
    """Drops the echo of ``prefix`` at the start of a continued answer.

    Deltas are matched against what is left of the prefix; the first delta
    that does not continue it ends stripping (an engine that does not echo
    loses nothing).
    """

    def __init__(self, prefix: str) -> None:
        self.rest = prefix

    def strip(self, delta: str) -> str:
        if not self.rest or not delta:
            return delta
        if delta.startswith(self.rest):
            delta, self.rest = delta[len(self.rest) :], ""
            return delta
        if self.rest.startswith(delta):
            self.rest = self.rest[len(delta) :]
            return ""
        self.rest = ""
        return delta


def merge_usage(
    usage: Mapping[str, Any] | None, *, earlier_tokens: int, segments: int
) -> dict[str, Any] | None:
    """The client's usage from the last segment's, with earlier segments folded in; pure.

    The last request's prompt held the original prompt plus ``earlier_tokens``
    of prefill, so those move from the prompt count to the completion count.
    """
    if usage is None:
        return None
    if segments <= 1:
        return dict(usage)
    prompt = max(0, int(usage.get("prompt_tokens", 0)) - earlier_tokens)
    completion = int(usage.get("completion_tokens", 0)) + earlier_tokens
    merged: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    cached = _cached_tokens(usage)
    if cached is not None:  # the last segment's, at most the original prompt
        merged["prompt_tokens_details"] = {"cached_tokens": min(cached, prompt)}
    return merged


def _cached_tokens(usage: Mapping[str, Any]) -> int | None:
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return cached if isinstance(cached, int) else None


def with_cached_tokens(usage: dict[str, Any], timings: Any) -> dict[str, Any]:
    """``usage`` with OpenAI's ``prompt_tokens_details.cached_tokens``: the engine's own
    when it gave it, else llama-server's ``timings.cache_n`` (prompt tokens it found in
    its cache; older releases report them only there); pure."""
    if isinstance(usage.get("prompt_tokens_details"), Mapping) or not isinstance(timings, dict):
        return usage
    cached = timings.get("cache_n")
    if not isinstance(cached, int):
        return usage
    return {**usage, "prompt_tokens_details": {"cached_tokens": cached}}


def parse_chunk(payload: bytes) -> dict[str, Any] | None:
    """A chunk payload as a dict, or None when it is not a JSON object; pure."""
    try:
        chunk = orjson.loads(payload)
    except ValueError:
        return None
    return chunk if isinstance(chunk, dict) else None
