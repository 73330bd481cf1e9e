"""The chat-completion answers the example agents send (``examples.completions``):
OpenAI's shape, streamed or not, with the agent's report where validate reads it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmfleet.examples import completions
from llmfleet.examples.completions import answer, read_body
from llmfleet.validate import answers
from llmfleet.validate.answers import read_answer

REPORT = {"sources": [{"filename": "cli/rollback.txt", "score": 0.5}], "tool_calls": []}


def sent(request: dict[str, Any], parts: Any, report: dict[str, Any] | None) -> list[dict]:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(answer(send, request, parts, model="docs", report=report))
    return messages


async def words() -> AsyncIterator[str]:
    for word in ("Roll ", "back."):
        yield word


def test_a_completion_carries_the_text_and_the_report_validate_reads() -> None:
    start, body = sent({"stream": False}, words(), REPORT)
    assert start["status"] == 200
    document = json.loads(body["body"])
    completion = ChatCompletion.model_validate(document)
    assert completion.choices[0].message.content == "Roll back."
    assert completion.model == "docs" and completion.id.startswith("chatcmpl-")
    read = read_answer(document)
    assert read.text == "Roll back." and read.sources is not None
    assert [s.document for s in read.sources] == ["cli/rollback.txt"]


def test_a_stream_is_chunks_then_the_report_on_the_last_then_done() -> None:
    start, *bodies = sent({"stream": True}, ["Roll ", "back."], REPORT)
    assert dict(start["headers"])[b"content-type"] == b"text/event-stream"
    assert [b["more_body"] for b in bodies] == [True, True, True, False]
    events = [b["body"].decode() for b in bodies]
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    assert events[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in parsed) == "Roll back."
    assert [c.choices[0].finish_reason for c in parsed] == [None, None, "stop"]
    assert [("llmfleet" in c) for c in chunks] == [False, False, True]
    assert chunks[-1]["llmfleet"] == REPORT
    assert len({c.id for c in parsed}) == 1


def test_the_agents_extension_is_the_one_validate_reads() -> None:
    assert completions.EXTENSION == answers.EXTENSION


def test_no_report_means_no_extension_and_a_body_in_pieces_is_read_whole() -> None:
    _, body = sent({}, [], None)
    document = json.loads(body["body"])
    assert "llmfleet" not in document and read_answer(document).text == ""
    pieces = iter([{"body": b'{"a"', "more_body": True}, {"body": b": 1}"}])

    async def receive() -> dict[str, Any]:
        return next(pieces)

    assert json.loads(asyncio.run(read_body(receive))) == {"a": 1}
