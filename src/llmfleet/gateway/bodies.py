"""The request bodies the gateway accepts: field types of the OpenAI API; pure.

A field of the wrong type is the client's mistake and must be answered 400 with
the field's name, by the gateway itself: some of them would crash the gateway's
own code (``stream_options: "x"``), and an engine may answer others 500
(llama-server does for a JSON type error), which the gateway would retry and
count as a replica fault. Only the fields of the OpenAI API are checked, and
only their types (and that ``n`` is at least 1): ranges and fields of one
engine (llama.cpp's ``cache_prompt``, vLLM's ``guided_json``) are the engine's
to judge, and its 4xx is passed on.

``service_of(body)`` reads the service a body names (first, so that later
errors are counted under it); ``check_body(kind, body)`` raises ``ApiError`` (400)
naming the first wrong field, as ``param`` too (``messages[1].content``,
``stream_options.include_usage``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from llmfleet.gateway import errors


class BodyKind(StrEnum):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"


Check = Callable[[Any], bool]
"""True when a value is of the field's type."""


def _null_or(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_stop(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _is_prompt(value: Any) -> bool:
    """A string, or a non-empty list of strings, of token ids, or of lists of token ids."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    return (
        all(isinstance(item, str) for item in value)
        or all(_is_int(item) for item in value)
        or all(isinstance(item, list) and item and all(map(_is_int, item)) for item in value)
    )


BOOLEAN = (_null_or(lambda v: isinstance(v, bool)), "true or false")
INTEGER = (_null_or(_is_int), "an integer")
NUMBER = (_null_or(_is_number), "a number")
STRING = (_null_or(_is_str), "a string")
OBJECT = (_null_or(lambda v: isinstance(v, dict)), "an object")
LIST = (_null_or(lambda v: isinstance(v, list)), "a list")
STOP = (_null_or(_is_stop), "a string or a list of strings")
PROMPT = (
    _is_prompt,
    "a string or a non-empty list of strings, of token ids or of lists of token ids",
)
TOOL_CHOICE = (_null_or(lambda v: isinstance(v, str | dict)), "a string or an object")
AT_LEAST_ONE = (_null_or(lambda v: _is_int(v) and v >= 1), "an integer >= 1")

Field = tuple[Check, str]
"""A field's check and what it must be, for the message."""

GENERATION: dict[str, Field] = {
    "stream": BOOLEAN,
    "stream_options": OBJECT,
    "max_tokens": INTEGER,
    "n": AT_LEAST_ONE,
    "temperature": NUMBER,
    "top_p": NUMBER,
    "presence_penalty": NUMBER,
    "frequency_penalty": NUMBER,
    "seed": INTEGER,
    "stop": STOP,
    "user": STRING,
    "logit_bias": OBJECT,
}
FIELDS: dict[BodyKind, dict[str, Field]] = {
    BodyKind.CHAT: {
        **GENERATION,
        "max_completion_tokens": INTEGER,
        "tools": LIST,
        "tool_choice": TOOL_CHOICE,
        "parallel_tool_calls": BOOLEAN,
        "response_format": OBJECT,
        "top_logprobs": INTEGER,
    },
    BodyKind.COMPLETION: {
        **GENERATION,
        "prompt": PROMPT,
        "echo": BOOLEAN,
        "best_of": INTEGER,
        "suffix": STRING,
    },
    BodyKind.EMBEDDING: {
        "input": PROMPT,
        "dimensions": INTEGER,
        "encoding_format": STRING,
        "user": STRING,
    },
}
REQUIRED = {BodyKind.CHAT: "messages", BodyKind.COMPLETION: "prompt", BodyKind.EMBEDDING: "input"}
MESSAGE_FIELDS: dict[str, Field] = {
    "name": STRING,
    "tool_calls": LIST,
    "tool_call_id": STRING,
}


def service_of(body: Any) -> str:
    """The service (``model``) a request body names; 400 unless it is a JSON object
    with a string ``model``."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str):
        raise wrong("model", "a string (a service name)", model)
    return model


def check_body(kind: BodyKind, body: dict[str, Any]) -> None:
    """Raise ``ApiError`` (400) for the first known field of ``body`` whose type is
    wrong, or a missing required one; pure."""
    required = REQUIRED[kind]
    if required not in body:
        raise errors.bad_request(f"'{required}' is required", param=required)
    _check_fields(body, FIELDS[kind], prefix="")
    options = body.get("stream_options")
    if isinstance(options, dict):  # else refused above, or a field embeddings ignore
        _check_fields(options, {"include_usage": BOOLEAN}, prefix="stream_options.")
    if kind is BodyKind.CHAT:
        _check_messages(body["messages"])


def _check_fields(body: Mapping[str, Any], fields: Mapping[str, Field], *, prefix: str) -> None:
    for name, (check, expected) in fields.items():
        if name in body and not check(body[name]):
            raise wrong(prefix + name, expected, body[name])


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise wrong("messages", "a non-empty list of messages", messages)
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise wrong(where, "an object with 'role' and 'content'", message)
        if not isinstance(message.get("role"), str):
            raise wrong(f"{where}.role", "a string", message.get("role"))
        content = message.get("content")
        if not (
            content is None
            or isinstance(content, str)
            or (isinstance(content, list) and all(isinstance(p, dict) for p in content))
        ):
            raise wrong(f"{where}.content", "a string or a list of content parts", content)
        _check_fields(message, MESSAGE_FIELDS, prefix=f"{where}.")


def wrong(param: str, expected: str, value: Any) -> errors.ApiError:
    """400: ``param`` must be ``expected``; the message names the type that came."""
    return errors.bad_request(f"'{param}' must be {expected}, got {_describe(value)}", param=param)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, str):
        return "a string"
    return repr(value) if _is_number(value) else type(value).__name__
