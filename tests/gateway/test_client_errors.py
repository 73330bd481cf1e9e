"""A client's malformed request is the client's error: 400 naming the field, never a 500.

Every field the gateway reads (and the OpenAI fields an engine would choke on) is
checked for its type before the request goes upstream; the answer is an OpenAI
error whose ``param`` names the field, and it is counted under status 400 (so the
``error_rate`` alert, which reads 5xx, stays quiet).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import GatewayUnderTest, replica, service, snapshot, spawn

CHAT: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
COMPLETION: dict[str, Any] = {"model": "chat", "prompt": "hello"}
EMBEDDING: dict[str, Any] = {"model": "chat", "input": "hello"}
BASES = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETION,
    "/v1/embeddings": EMBEDDING,
}


@pytest.fixture
async def gw(sims: list[Any], make_gateway: Any) -> GatewayUnderTest:
    """A gateway in front of one sim whose answers are 4 tokens long."""
    sim = spawn(sims, "--output-tokens", "4")
    made: GatewayUnderTest = await make_gateway(
        snapshot({"chat": service()}, [replica("chat", sim, 0)])
    )
    return made


def _statuses(gw: GatewayUnderTest, path: str) -> dict[str, float]:
    """``llmfleet_gateway_requests_total`` of the service ``chat`` at ``path``, by status."""
    children = gw.gateway.metrics.requests.children
    return {
        status: child.value
        for (svc, endpoint, status), child in children.items()
        if svc == "chat" and endpoint == path
    }


@pytest.mark.parametrize("value", ["x", 5, [], True, {"include_usage": "yes"}])
@pytest.mark.parametrize("stream", [True, False])
async def test_stream_options_of_a_wrong_type_is_400(
    gw: GatewayUnderTest, value: Any, stream: bool
) -> None:
    """``stream_options`` that is not an object (or whose ``include_usage`` is not a
    boolean): 400 naming the field, counted as 400, not 500 counted as 200."""
    body = {**CHAT, "stream": stream, "stream_options": value}
    status, answer, _ = await gw.post("/v1/chat/completions", body)
    assert status == 400, answer
    error = answer["error"]
    assert error["type"] == "invalid_request_error"
    assert "stream_options" in error["message"]
    assert error["param"].startswith("stream_options")
    assert _statuses(gw, "/v1/chat/completions") == {"400": 1.0}


WRONG: list[tuple[str, str, Any]] = [
    ("/v1/chat/completions", "stream", "yes"),
    ("/v1/chat/completions", "max_tokens", "10"),
    ("/v1/chat/completions", "max_tokens", 2.5),
    ("/v1/chat/completions", "max_tokens", True),
    ("/v1/chat/completions", "max_completion_tokens", [1]),
    ("/v1/chat/completions", "n", "2"),
    ("/v1/chat/completions", "n", 0),
    ("/v1/chat/completions", "temperature", "hot"),
    ("/v1/chat/completions", "temperature", False),
    ("/v1/chat/completions", "top_p", {}),
    ("/v1/chat/completions", "seed", 1.5),
    ("/v1/chat/completions", "stop", 3),
    ("/v1/chat/completions", "stop", ["a", 1]),
    ("/v1/chat/completions", "messages", ["hello"]),
    ("/v1/chat/completions", "messages", [{"content": "no role"}]),
    ("/v1/chat/completions", "messages", [{"role": 1, "content": "x"}]),
    ("/v1/chat/completions", "messages", [{"role": "user", "content": 5}]),
    ("/v1/chat/completions", "messages", [{"role": "user", "content": ["part"]}]),
    ("/v1/chat/completions", "messages", {"role": "user"}),
    ("/v1/completions", "prompt", 5),
    ("/v1/completions", "prompt", [None]),
    ("/v1/completions", "prompt", []),
    ("/v1/completions", "stream", 1),
    ("/v1/completions", "max_tokens", "4"),
    ("/v1/completions", "echo", "no"),
    ("/v1/embeddings", "input", 5),
    ("/v1/embeddings", "input", []),
    ("/v1/embeddings", "input", [{"text": "x"}]),
    ("/v1/embeddings", "dimensions", "64"),
    ("/v1/embeddings", "encoding_format", 1),
]


@pytest.mark.parametrize(("path", "field", "value"), WRONG)
async def test_a_field_of_a_wrong_type_is_400_naming_it(
    gw: GatewayUnderTest, path: str, field: str, value: Any
) -> None:
    """Each field of a wrong type or out of its range is refused by the gateway itself
    with 400 and the field's name (an engine such as llama-server answers some of these
    500, which would be retried and eject healthy replicas)."""
    status, answer, _ = await gw.post(path, {**BASES[path], field: value})
    assert status == 400, answer
    assert field in answer["error"]["message"]
    assert answer["error"]["param"].split(".")[0].split("[")[0] == field
    assert gw.gateway.metrics.upstream.children == {}  # never sent to the engine
    assert _statuses(gw, path) == {"400": 1.0}


@pytest.mark.parametrize("path", sorted(BASES))
async def test_valid_requests_still_pass(gw: GatewayUnderTest, path: str) -> None:
    """The checks accept what the OpenAI API accepts: nulls, token-id prompts, text parts."""
    extras: dict[str, dict[str, Any]] = {
        "/v1/chat/completions": {
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
                {"role": "user", "content": "hello", "name": "ann"},
            ],
            "stream": None,
            "stream_options": None,
            "temperature": 0,
            "top_p": 0.5,
            "stop": ["\n"],
            "max_tokens": 4,
            "n": 1,
            "seed": 3,
        },
        "/v1/completions": {"prompt": ["hello"], "stop": None, "max_tokens": None, "echo": False},
        "/v1/embeddings": {"input": ["a", "b"], "encoding_format": "float"},
    }
    extra = extras[path]
    status, answer, _ = await gw.post(path, {**BASES[path], **extra})
    assert status == 200, answer


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = st.sampled_from(
    [
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "stop",
        "user",
        "messages",
        "prompt",
        "input",
        "echo",
        "logprobs",
        "tools",
        "tool_choice",
        "dimensions",
        "encoding_format",
    ]
)
SMALL = {"max_tokens": 4}
"""keeps the answers to valid fuzzed bodies short."""


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(sorted(BASES)),
    changes=st.dictionaries(FIELDS, JSON_VALUES, min_size=1, max_size=3),
    message=st.one_of(st.none(), JSON_VALUES),
)
@example(path="/v1/embeddings", changes={"stream_options": True}, message=None)  # found by it
async def test_fuzzed_bodies_are_never_a_server_error(
    gw: GatewayUnderTest, path: str, changes: dict[str, Any], message: Any
) -> None:
    """Any JSON value in any field the gateway knows (and any item in ``messages``):
    200 or 400, never 5xx; a 400 is OpenAI error JSON."""
    body = {**BASES[path], **SMALL, **changes}
    if message is not None and path == "/v1/chat/completions":
        body["messages"] = [*CHAT["messages"], message]
    async with gw.session.post(gw.url + path, json=body) as resp:
        data = await resp.read()
    assert resp.status in (200, 400), (resp.status, data)
    if resp.status == 400:
        error = json.loads(data)["error"]
        assert error["type"] == "invalid_request_error"
        assert isinstance(error["message"], str)
    assert not [s for s in _statuses(gw, path) if not s.startswith(("2", "4"))]
