"""The official ``openai`` client against the gateway in front of a REAL llama-server
with SmolLM2-135M: models, request ids, cached prompt tokens and tool calls.

SmolLM2's own chat template knows no tools, so the service is given a ChatML
template that does (``data/chatml_tools.jinja``, Qwen 2.5's layout on SmolLM2's
own ChatML tokens) with ``--chat-template-file``. llama-server 11434.0.0 then
puts the tools in the prompt, but does not constrain the answer with a grammar
even for ``tool_choice: "required"``, and a 135M model answers in prose: what is
tested is that the gateway carries tools to the engine and any tool call back,
not that this small model makes one.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.engines.environment import engine_environment
from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.gateway.app import GatewayApp, create_app
from llmfleet.gateway.replicas import Snapshot, StaticSource
from llmfleet.spec.model import ServiceSpec
from tests.engines.test_llamacpp_real import free_port, wait_healthy
from tests.fixtures.engines import LLAMACPP_VERSION, QUICKSTART_MODEL, REAL_TIMEOUT_S
from tests.fixtures.processes import stop_process

pytestmark = [pytest.mark.real, pytest.mark.timeout(REAL_TIMEOUT_S)]
TEMPLATE = Path(__file__).parent / "data" / "chatml_tools.jinja"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def llama(
    llama_server_bin: Path, smollm_model: Path, tmp_path: Path
) -> Iterator[tuple[ServiceSpec, int]]:
    """A real llama-server started as the agent starts it (the install's proved setting)."""
    spec = ServiceSpec.model_validate(
        {
            "model": QUICKSTART_MODEL,
            "engine": {
                "kind": "llamacpp",
                "version": LLAMACPP_VERSION,
                "args": ["--chat-template-file", str(TEMPLATE)],
            },
            "slots": 1,
            "context": 1024,
            "resources": {"cpus": 2},
        }
    )
    launch = LlamaCppAdapter().local_command(
        spec, executable=llama_server_bin, model_path=smollm_model, served_name="chat"
    )
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in launch.argv]
    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=engine_environment(launch.env)
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_healthy(client)
        yield spec, port
    finally:
        stop_process(proc)


@pytest.fixture
async def gateway(llama: tuple[ServiceSpec, int]) -> AsyncIterator[GatewayApp]:
    spec, port = llama
    replica = ReplicaStatus(
        replica_id="chat-0",
        environment="e2e",
        service="chat",
        slot=0,
        runtime_hash="h",
        engine="llamacpp",
        engine_version=LLAMACPP_VERSION,
        state=ReplicaState.READY,
        port=port,
        served_name="chat",
        started_at=1_790_000_000.0,
    )
    app = create_app(StaticSource(Snapshot({"chat": spec}, [replica], generation=1)))
    await app.serve(host="127.0.0.1", port=0)
    try:
        yield app
    finally:
        await app.close(grace_s=1.0)


async def test_the_openai_client_gets_models_ids_cached_tokens_and_tools(
    gateway: GatewayApp,
) -> None:
    """One real engine, the official client: what an OpenAI user looks at works."""
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key="none", max_retries=0, timeout=60
    )
    async with client:
        model = await client.models.retrieve("chat")
        assert (model.id, model.created) == ("chat", 1_790_000_000)
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("gpt-4")

        plain = await client.chat.completions.with_raw_response.create(
            model="chat", messages=ASK, max_tokens=4, temperature=0
        )
        assert plain.headers["x-request-id"]
        without_tools = plain.parse().usage
        assert without_tools is not None

        stream = await client.chat.completions.create(
            model="chat",
            messages=ASK,
            max_tokens=4,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [chunk.usage async for chunk in stream if chunk.usage][-1]
        details = usage.prompt_tokens_details
        assert details is not None and details.cached_tokens, usage  # the same prompt again

        answer = await client.chat.completions.create(
            model="chat",
            messages=ASK,
            max_tokens=24,
            temperature=0,
            tools=[WEATHER],
            tool_choice="required",
        )
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > without_tools.prompt_tokens + 50  # the tools went in
    for call in answer.choices[0].message.tool_calls or []:
        assert call.function.name == "get_weather"
        json.loads(call.function.arguments)
    print(
        "tool_calls:",
        answer.choices[0].message.tool_calls,
        "content:",
        answer.choices[0].message.content,
    )
