"""An engine that refuses a request (4xx, or 501 "not supported") refused the client's
request, not because the replica is sick.

So the gateway tries once (no retry on other replicas), answers the client an
OpenAI error with the engine's own words (never Python's ``b'...'`` of its bytes),
does not eject or count the replica as failing, and counts the answer as a 4xx,
which the ``error_rate`` alert (share of 5xx) does not see. A service whose engine
is known not to serve embeddings (llama-server without ``--embeddings``) is answered
400 at once, naming the services that do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.capabilities import why_no_embeddings
from llmfleet.gateway.errors import engine_words
from llmfleet.observe.fleet import gateway_samples
from llmfleet.observe.signals import Window, error_rate
from tests.gateway.conftest import GatewayUnderTest, replica, service, snapshot, spawn

LLAMA_501 = {
    "error": {
        "code": 501,
        "message": "This server does not support embeddings. Start it with `--embeddings`",
        "type": "not_supported_error",
    }
}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
EMBED = {"model": "chat", "input": "hello"}


@dataclasses.dataclass
class RefusingEngine:
    """A small honest fake engine: every POST is answered ``status`` with ``body``;
    ``/health`` is 200. ``hits`` counts the POSTs per path."""

    server: TestServer
    port: int
    hits: dict[str, int]


@pytest.fixture
async def refusing_engine() -> AsyncIterator[Any]:
    servers: list[TestServer] = []

    async def make(*, status: int, body: bytes) -> RefusingEngine:
        hits: dict[str, int] = {}

        async def refuse(request: web.Request) -> web.Response:
            await request.read()
            hits[request.path] = hits.get(request.path, 0) + 1
            return web.Response(body=body, status=status, content_type="application/json")

        async def health(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_post("/v1/chat/completions", refuse)
        app.router.add_post("/v1/completions", refuse)
        app.router.add_post("/v1/embeddings", refuse)
        app.router.add_get("/health", health)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        assert server.port is not None
        return RefusingEngine(server, server.port, hits)

    yield make
    for server in servers:
        await server.close()


def on_engine(name: str, engine: RefusingEngine, index: int, kind: str) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"{name}-{index}",
        environment="test",
        service=name,
        slot=index,
        runtime_hash="h",
        engine=kind,
        engine_version="1",
        state=ReplicaState.READY,
        port=engine.port,
        served_name=name,
    )


def llamacpp(*args: str) -> Any:
    return service(
        model="file:/models/m.gguf",
        engine={"kind": "llamacpp", "version": "6000.0.0", "args": list(args)},
    )


async def fleet_error_rate(gw: GatewayUnderTest, name: str) -> float | None:
    """What the ``error_rate`` alert computes for service ``name`` from this gateway's
    ``/metrics``, over a window that starts before its first request."""
    async with gw.session.get(gw.url + "/metrics") as resp:
        text = await resp.text()
    return error_rate(Window(old=[], new=gateway_samples(text, "test")), "test", name)


def assert_not_blamed(gw: GatewayUnderTest, replica_id: str) -> None:
    """The replica is neither ejected nor counted as failing."""
    assert not gw.gateway.health.is_ejected(replica_id)
    registry = gw.gateway.metrics.registry
    ejections = {"service": "chat", "replica": replica_id}
    assert not registry.get_sample_value("llmfleet_gateway_ejections_total", ejections)
    assert not registry.get_sample_value("llmfleet_gateway_retries_total", {"service": "chat"})


def assert_clean(message: str) -> None:
    """An engine's words, not the repr of its bytes."""
    assert "b'" not in message and 'b"' not in message and "\\x" not in message, message
    assert message.isprintable(), message


async def test_embeddings_on_a_service_without_them_is_400_naming_those_with(
    sims, make_gateway, refusing_engine
) -> None:
    """llama-server started without ``--embeddings``: 400 at once (the engine is never
    asked), saying which services serve embeddings; not a 503 after three retries."""
    engine = await refusing_engine(status=501, body=orjson.dumps(LLAMA_501))
    sim = spawn(sims, model="sim-emb")
    services = {
        "chat": llamacpp(),
        "emb": llamacpp("--embeddings", "--pooling", "mean"),
        "sim-emb": service(),
    }
    replicas = [
        on_engine("chat", engine, 0, "llamacpp"),
        on_engine("chat", engine, 1, "llamacpp"),
        on_engine("emb", engine, 0, "llamacpp"),
        replica("sim-emb", sim, 0),
    ]
    gw = await make_gateway(snapshot(services, replicas))
    status, answer, _ = await gw.post("/v1/embeddings", EMBED)
    assert status == 400, answer
    error = answer["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "model"
    assert "'chat' does not serve embeddings" in error["message"]
    assert "emb, sim-emb" in error["message"]
    assert "--embeddings" in error["message"]
    assert engine.hits == {}
    assert_not_blamed(gw, "chat-0")
    assert await fleet_error_rate(gw, "chat") == 0.0
    status, answer, _ = await gw.post("/v1/embeddings", {**EMBED, "model": "sim-emb"})
    assert status == 200, answer


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/embeddings", EMBED),
        ("/v1/chat/completions", CHAT),
        ("/v1/chat/completions", {**CHAT, "stream": True}),
    ],
)
async def test_an_engine_501_is_the_clients_error_not_retried(
    make_gateway, refusing_engine, path: str, body: dict[str, Any]
) -> None:
    """An engine answering 501 (not supported: embeddings without ``--embeddings``,
    completions on an embeddings-only llama-server): one attempt, 400 to the client
    with the engine's message, replicas not blamed, no 5xx for the alert."""
    engine = await refusing_engine(status=501, body=orjson.dumps(LLAMA_501))
    replicas = [on_engine("chat", engine, i, "sim") for i in range(3)]
    gw = await make_gateway(snapshot({"chat": service()}, replicas))
    status, answer, _ = await gw.post(path, body)
    assert status == 400, answer
    error = answer["error"]
    assert "does not support embeddings" in error["message"]
    assert_clean(error["message"])
    assert sum(engine.hits.values()) == 1
    for index in range(3):
        assert_not_blamed(gw, f"chat-{index}")
    assert await fleet_error_rate(gw, "chat") == 0.0


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (
            422,
            orjson.dumps({"error": {"message": "n_probs too big", "type": "invalid_request"}}),
            "n_probs too big",
        ),
        (400, orjson.dumps({"detail": "prompt too long"}), "prompt too long"),
        (400, b"bad \x00\xff\x1b[31mrequest\r\n", "bad"),
        (404, b"", "404"),
    ],
)
@pytest.mark.parametrize("stream", [True, False])
async def test_an_engine_4xx_is_passed_on_as_an_openai_error(
    make_gateway, refusing_engine, status: int, body: bytes, words: str, stream: bool
) -> None:
    """The engine's 4xx reaches the client with its status, as OpenAI error JSON
    carrying the engine's message (control bytes and raw reprs removed); one attempt."""
    engine = await refusing_engine(status=status, body=body)
    replicas = [on_engine("chat", engine, i, "sim") for i in range(2)]
    gw = await make_gateway(snapshot({"chat": service()}, replicas))
    got, answer, resp = await gw.post("/v1/chat/completions", {**CHAT, "stream": stream})
    assert got == status, answer
    assert resp.content_type == "application/json"
    error = answer["error"]
    assert words in error["message"]
    assert_clean(error["message"])
    assert isinstance(error["type"], str) and error["code"]
    assert sum(engine.hits.values()) == 1
    assert_not_blamed(gw, "chat-0")
    assert_not_blamed(gw, "chat-1")
    assert await fleet_error_rate(gw, "chat") == 0.0


async def test_a_5xx_is_still_retried_and_its_message_is_clean(
    make_gateway, refusing_engine
) -> None:
    """A real server error (500) is retried on the other replicas as before; the 503
    that ends it quotes the engine's words, not the repr of its bytes."""
    engine = await refusing_engine(status=500, body=b"\xff\x00boom\n")
    replicas = [on_engine("chat", engine, i, "sim") for i in range(2)]
    gw = await make_gateway(snapshot({"chat": service()}, replicas))
    status, answer, _ = await gw.post("/v1/chat/completions", CHAT)
    assert status == 503, answer
    assert "boom" in answer["error"]["message"]
    assert_clean(answer["error"]["message"])
    assert sum(engine.hits.values()) == 3  # retries.attempts


@pytest.mark.parametrize(
    ("engine", "args", "env", "serves"),
    [
        ("llamacpp", [], {}, False),
        ("llamacpp", ["--embeddings"], {}, True),
        ("llamacpp", ["--embedding"], {}, True),
        ("llamacpp", ["--reranking"], {}, True),
        ("llamacpp", [], {"LLAMA_ARG_EMBEDDINGS": "true"}, True),
        ("llamacpp", [], {"LLAMA_ARG_EMBEDDINGS": "0"}, False),
        ("vllm", [], {}, True),
        ("vllm", ["--task", "embed"], {}, True),
        ("vllm", ["--runner=pooling"], {}, True),
        ("vllm", ["--task", "generate"], {}, False),
        ("vllm", ["--runner", "generate"], {}, False),
        ("sim", [], {}, True),
    ],
)
def test_which_services_serve_embeddings(
    engine: str, args: list[str], env: dict[str, str], serves: bool
) -> None:
    """Known from the spec: llama-server only with ``--embeddings`` (or its env
    variable); vLLM unless its task says generate (else the engine decides); the sim
    always."""
    spec = service(
        model="file:/m.gguf", engine={"kind": engine, "version": "1.0.0", "args": args, "env": env}
    )
    assert (why_no_embeddings(spec) is None) is serves


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"error": {"message": "too long", "type": "x"}}', "too long"),
        (b'{"object": "error", "message": "bad model"}', "bad model"),
        (b'{"detail": [{"loc": ["body"], "msg": "field required"}]}', "field required"),
        (b'{"error": "plain"}', "plain"),
        (b"line one\r\nline\ttwo\x07", "line one line two"),
        (b"\xff\xfe", "\ufffd\ufffd"),
        (b"", ""),
    ],
)
def test_engine_words_are_one_clean_line(body: bytes, words: str) -> None:
    """An engine's error body becomes its message as printable text on one line."""
    said = engine_words(body)
    assert words in said
    assert said.isprintable()
    assert len(engine_words(b"x" * 10_000)) == 300
