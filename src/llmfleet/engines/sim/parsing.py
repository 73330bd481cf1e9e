"""Parse OpenAI request bodies into ``GenerationRequest``; pure.

Only what the sim uses is read; sampling fields (temperature, top_p, ...) are
accepted and ignored because the answer is deterministic by design. Anything
malformed raises ``RequestError``, which the server turns into an OpenAI-style
400 error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmfleet.engines.sim.text import conversation_key, prompt_key, split_continuation


class RequestError(ValueError):
    """The request body is not a valid request; the message says which field."""


@dataclass(frozen=True)
class GenerationRequest:
    """One chat or completion request, reduced to what decides its answer.

    ``key`` names the conversation without a final assistant message; that
    message, if any, is ``prefill`` and the answer continues after it.
    """

    chat: bool
    key: bytes
    prompt_words: tuple[str, ...]
    prefill: str | None
    continue_final: bool
    max_tokens: int | None
    stream: bool
    include_usage: bool


def parse_chat(body: object) -> GenerationRequest:
    """A chat completions body (``messages``) as a ``GenerationRequest``."""
    fields = _require_object(body)
    messages = _parse_messages(fields.get("messages"))
    continue_final = fields.get("continue_final_message") is True
    prefill: str | None = None
    if messages[-1][0] == "assistant":
        prefill = messages[-1][1]
        messages = messages[:-1]
    elif continue_final:
        raise RequestError("continue_final_message needs a final message with role 'assistant'")
    texts = [text for _, text in messages] + ([prefill] if prefill is not None else [])
    return GenerationRequest(
        chat=True,
        key=conversation_key((f"{role}\x1f{text}" for role, text in messages), _seed(fields)),
        prompt_words=split_words(texts),
        prefill=prefill,
        continue_final=continue_final,
        **_common(fields),
    )


def parse_completion(body: object) -> GenerationRequest:
    """A completions body (``prompt``, one string) as a ``GenerationRequest``.

    A prompt that ends with the start of its own answer (how the gateway
    resumes a completion) continues that answer, like a chat prefill.
    """
    fields = _require_object(body)
    prompt = fields.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError("'prompt' must be a string (or a list of exactly one string)")
    seed = _seed(fields)
    base, continued = split_continuation(prompt, seed)
    return GenerationRequest(
        chat=False,
        key=prompt_key(base, seed),
        prompt_words=tuple(prompt.split()),
        prefill=continued or None,
        continue_final=True,  # a continued prompt is never echoed back
        **_common(fields),
    )


def parse_embedding_inputs(body: object) -> list[str]:
    """The ``input`` of an embeddings body as a list of strings."""
    fields = _require_object(body)
    given = fields.get("input")
    inputs = [given] if isinstance(given, str) else given
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise RequestError("'input' must be a string or a non-empty list of strings")
    return inputs


def _require_object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object")
    return body


def _parse_messages(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects")
    return [_parse_message(index, message) for index, message in enumerate(value)]


def _parse_message(index: int, message: object) -> tuple[str, str]:
    if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
        raise RequestError(f"messages[{index}] must be an object with a string 'role'")
    return message["role"], _content_text(index, message.get("content"))


def _content_text(index: int, content: object) -> str:
    """Message content as text: a string, null, or a list of ``{"type": "text"}`` parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, Mapping)]
        if len(texts) == len(content) and all(isinstance(text, str) for text in texts):
            return "".join(str(text) for text in texts)
    raise RequestError(f"messages[{index}].content must be a string or a list of text parts")


def _common(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields chat and completions share: length cap, streaming, n."""
    if fields.get("n", 1) != 1:
        raise RequestError("the sim engine supports only n=1")
    stream = fields.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be true or false")
    options = fields.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise RequestError("'stream_options' must be an object")
    return {
        "max_tokens": _max_tokens(fields),
        "stream": stream,
        "include_usage": stream and options.get("include_usage") is True,
    }


def _max_tokens(fields: Mapping[str, Any]) -> int | None:
    value = fields.get("max_completion_tokens", fields.get("max_tokens"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestError(f"'max_tokens' must be a whole number >= 0, got {value!r}")
    return value


def _seed(fields: Mapping[str, Any]) -> int | None:
    seed = fields.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(f"'seed' must be an integer, got {seed!r}")
    return seed


def split_words(texts: Sequence[str]) -> tuple[str, ...]:
    """All whitespace-separated words of ``texts``, in order."""
    return tuple(word for text in texts for word in text.split())
