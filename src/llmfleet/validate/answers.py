"""What an agent's answer says it did: the contract, and reading it from a completion; pure.

An agent answers ``/v1/chat/completions`` like a model. Besides its text it reports
what it retrieved and which tools it called in one extension object, ``llmfleet``,
at the top level of the ``chat.completion`` (when streaming: of the last chunk, the
one with ``finish_reason``, as ``usage`` is sent)::

    {"object": "chat.completion", "choices": [...], "usage": {...},
     "llmfleet": {
       "sources": [                       # best first, as ranked by the agent
         {"filename": "docs/releases.md", "score": 0.83, "text": "Roll back with ...",
          "file_id": "docs/releases.md#2", "attributes": {"index": "docs"}}],
       "tool_calls": [                    # in the order the agent made them
         {"id": "call_1", "type": "function",
          "function": {"name": "search_docs", "arguments": "{\\"query\\": \\"roll back\\"}"}}]}}

A source is shaped as a result of OpenAI's and Llama Stack's ``file_search`` tool
(``filename``, ``file_id``, ``score``, ``text``, ``attributes``; LlamaIndex's source
nodes carry the same: text, score, metadata); ``filename`` is the document's key in
the index (its path under the pipeline's source), which is what a suite names. A tool
call is shaped as an item of OpenAI's ``tool_calls`` (``arguments`` a JSON string).
They are not put in ``message.tool_calls``: there they would ask the client to run
the tools, while these were run by the agent already. Every OpenAI client keeps the
unknown field (the Python client: ``completion.model_extra["llmfleet"]``), and one
that does not know it loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXTENSION = "llmfleet"


@dataclass(frozen=True, slots=True)
class Source:
    document: str
    score: float | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any] | None
    """None when the agent sent arguments that are not a JSON object"""


@dataclass(frozen=True)
class Answer:
    """An answer's text and, for an agent, what it reported doing (None: not reported)."""

    text: str
    sources: tuple[Source, ...] | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    malformed: str = ""
    """why the ``llmfleet`` extension could not be read, when it could not"""


def read_answer(body: Mapping[str, Any]) -> Answer:
    """The answer of a ``chat.completion`` body; a malformed extension is told, not raised.

    ``KeyError``/``TypeError`` only when the body is not a chat completion at all."""
    text = str(body["choices"][0]["message"].get("content") or "")
    extension = body.get(EXTENSION)
    if extension is None:
        return Answer(text)
    try:
        return Answer(text, *_read_extension(extension))
    except ValueError as exc:
        return Answer(text, malformed=f"its '{EXTENSION}' object is malformed: {exc}")


def _read_extension(
    extension: Any,
) -> tuple[tuple[Source, ...] | None, tuple[ToolCall, ...] | None]:
    if not isinstance(extension, Mapping):
        raise ValueError("not an object")
    sources = extension.get("sources")
    calls = extension.get("tool_calls")
    return (
        None if sources is None else tuple(_source(s, at) for at, s in enumerate(_list(sources))),
        None if calls is None else tuple(_call(c, at) for at, c in enumerate(_list(calls))),
    )


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _source(item: Any, at: int) -> Source:
    if not isinstance(item, Mapping) or not isinstance(item.get("filename"), str):
        raise ValueError(f"sources[{at}] needs a filename (the document's key)")
    score = item.get("score")
    if score is not None and not isinstance(score, int | float):
        raise ValueError(f"sources[{at}].score must be a number")
    return Source(item["filename"], None if score is None else float(score))


def _call(item: Any, at: int) -> ToolCall:
    function = item.get("function") if isinstance(item, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise ValueError(f"tool_calls[{at}] needs function.name")
    raw = function.get("arguments")
    arguments: Any = raw
    if isinstance(raw, str):
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except ValueError:
            arguments = None
    elif raw is None:
        arguments = {}
    return ToolCall(function["name"], arguments if isinstance(arguments, Mapping) else None)
