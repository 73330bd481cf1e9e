"""What the sim answers and how it is written on the wire; pure.

``plan_answer`` decides the tokens and finish reason of a request from its
conversation alone; the server only adds time. The encoders build OpenAI
response bodies and SSE chunks. Chunks are assembled from precomputed JSON
fragments because they are written once per token, on the hot path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llmfleet.engines.sim.parsing import GenerationRequest, RequestError
from llmfleet.engines.sim.text import (
    VOCABULARY,
    answer_tokens,
    covered_tokens,
    natural_length,
)

_TOKEN_JSON = {token: json.dumps(token) for token in VOCABULARY}
DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class Answer:
    """The tokens one response generates, after any echoed prefill."""

    tokens: tuple[str, ...]
    finish_reason: str
    echo: str
    prompt_tokens: int


def plan_answer(
    request: GenerationRequest, *, output_tokens: int | None, echo_prefill: bool, context: int
) -> Answer:
    """The answer to ``request``; pure.

    A prefill that repeats the first ``k`` tokens of the answer makes this
    response start at token ``k``, so an interrupted answer continued with its
    own first ``k`` tokens ends exactly like the uninterrupted one.
    """
    prompt_tokens = len(request.prompt_words)
    if prompt_tokens > context:
        raise RequestError(
            f"the prompt has {prompt_tokens} tokens, more than the context of {context}"
        )
    total = output_tokens if output_tokens is not None else natural_length(request.key)
    start = covered_tokens(request.key, request.prefill) if request.prefill else 0
    remaining = max(total - start, 0)
    cap = context - prompt_tokens
    if request.max_tokens is not None:
        cap = min(cap, request.max_tokens)
    count = min(remaining, cap)
    echoed = echo_prefill and request.prefill and not request.continue_final
    echo = request.prefill if echoed else ""
    return Answer(
        tokens=tuple(answer_tokens(request.key, start, start + count)),
        finish_reason="length" if cap < remaining else "stop",
        echo=echo or "",
        prompt_tokens=prompt_tokens,
    )


def usage_body(*, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


@dataclass(frozen=True)
class ResponseHeader:
    """The fields every body and chunk of one response repeats."""

    id: str
    created: int
    model: str
    chat: bool


def completion_body(
    header: ResponseHeader, *, text: str, finish_reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    """A whole non-streaming chat or completions response."""
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
    if header.chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": header.id,
        "object": "chat.completion" if header.chat else "text_completion",
        "created": header.created,
        "model": header.model,
        "choices": [choice],
        "usage": usage,
    }


class ChunkEncoder:
    """SSE chunks of one streaming response, built from fixed fragments.

    Only the content of a token chunk changes from chunk to chunk, so each is
    ``head + json(content) + tail`` rather than a full ``json.dumps``.
    """

    def __init__(self, header: ResponseHeader) -> None:
        kind = "chat.completion.chunk" if header.chat else "text_completion"
        self._prefix = (
            f'data: {{"id":{json.dumps(header.id)},"object":"{kind}",'
            f'"created":{header.created},"model":{json.dumps(header.model)},"choices":'
        )
        self._chat = header.chat
        field = '[{"index":0,"delta":{"content":' if header.chat else '[{"index":0,"text":'
        self._head = self._prefix + field
        closing = "}" if header.chat else ""
        self._tail = closing + ',"logprobs":null,"finish_reason":null}]}\n\n'

    def role(self) -> str:
        """The opening chunk of a chat stream (empty for completions, which have none)."""
        if not self._chat:
            return ""
        delta = '[{"index":0,"delta":{"role":"assistant","content":""},'
        return self._prefix + delta + '"logprobs":null,"finish_reason":null}]}\n\n'

    def content(self, text: str) -> str:
        encoded = _TOKEN_JSON.get(text) or json.dumps(text)
        return self._head + encoded + self._tail

    def finish(self, reason: str) -> str:
        body = '{"index":0,"delta":{}' if self._chat else '{"index":0,"text":""'
        return f'{self._prefix}[{body},"logprobs":null,"finish_reason":"{reason}"}}]}}\n\n'

    def usage(self, usage: dict[str, Any]) -> str:
        return f'{self._prefix}[],"usage":{json.dumps(usage)}}}\n\n'
