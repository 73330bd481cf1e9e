"""The sim engine's HTTP app: the OpenAI API of a real engine, without a model.

Routes: ``POST /v1/chat/completions`` and ``/v1/completions`` (see
``generation``), ``POST /v1/embeddings``, ``GET /v1/models``, ``GET /health``
(503 while loading), ``GET /metrics``, ``GET /props`` (llama-server's slot
count) and ``GET``/``POST /sim/faults`` to read or change fault settings live.
Given an API key, every route but the health check wants it (``keys``).
"""

from __future__ import annotations

from aiohttp import web

from llmfleet.engines.sim.faults import Faults, FaultsError, parse_faults_update
from llmfleet.engines.sim.generation import (
    chat_completions,
    completions,
    error_response,
    read_json,
)
from llmfleet.engines.sim.keys import key_middleware
from llmfleet.engines.sim.parsing import parse_embedding_inputs
from llmfleet.engines.sim.runtime import RUNTIME, ExitProcess, SimConfig, SimRuntime, exit_hard
from llmfleet.engines.sim.text import count_words, embedding


def create_app(
    config: SimConfig,
    faults: Faults | None = None,
    *,
    exit_process: ExitProcess = exit_hard,
    api_key: str | None = None,
) -> web.Application:
    """A sim engine app; its ``SimRuntime`` is at ``app[RUNTIME]``.

    ``exit_process`` is what the crash faults call; tests pass a recorder.
    ``api_key`` set guards the app as llama-server's ``--api-key`` does; without
    it no middleware runs at all (the benches' hot path stays as it was).
    """
    app = web.Application(middlewares=[key_middleware(api_key)] if api_key else [])
    app[RUNTIME] = SimRuntime(config, faults or Faults(), exit_process=exit_process)
    app.on_startup.append(_mark_started)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", _embeddings)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/props", _props)
    app.router.add_get("/sim/faults", _get_faults)
    app.router.add_post("/sim/faults", _post_faults)
    return app


async def _mark_started(app: web.Application) -> None:
    app[RUNTIME].mark_started()


async def _embeddings(request: web.Request) -> web.Response:
    """Deterministic unit vectors of --embedding-dim, one per input string."""
    sim = request.app[RUNTIME]
    try:
        inputs = parse_embedding_inputs(await read_json(request))
    except ValueError as exc:
        return error_response(400, str(exc), "invalid_request_error")
    dim = sim.config.embedding_dim
    data = [
        {"object": "embedding", "index": index, "embedding": embedding(text, dim)}
        for index, text in enumerate(inputs)
    ]
    words = count_words(inputs)
    usage = {"prompt_tokens": words, "total_tokens": words}
    body = {"object": "list", "data": data, "model": sim.config.model_name, "usage": usage}
    return web.json_response(body)


async def _models(request: web.Request) -> web.Response:
    sim = request.app[RUNTIME]
    model = {
        "id": sim.config.model_name,
        "object": "model",
        "created": int(sim.started_wall),
        "owned_by": "llmfleet-sim",
        "meta": {"n_ctx_train": sim.config.context},
    }
    return web.json_response({"object": "list", "data": [model]})


async def _health(request: web.Request) -> web.Response:
    """503 during --load-time after start (as llama-server while loading), then 200."""
    if request.app[RUNTIME].loading():
        return web.json_response({"status": "loading"}, status=503)
    return web.json_response({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[RUNTIME].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def _props(request: web.Request) -> web.Response:
    """Slot occupancy in llama-server's shape, plus the sim's own settings."""
    sim = request.app[RUNTIME]
    return web.json_response(_props_body(sim))


def _props_body(sim: SimRuntime) -> dict[str, object]:
    config = sim.config
    return {
        "total_slots": config.slots,
        "idle_slots": config.slots - sim.running,
        "requests_running": sim.running,
        "requests_waiting": sim.waiting,
        "tokens_emitted": sim.tokens_emitted,
        "model_alias": config.model_name,
        "default_generation_settings": {"n_ctx": config.context},
        "build_info": f"llmfleet-sim {config.version}",
        "sim": {
            "version": config.version,
            "ttft": config.ttft,
            "tps": config.tps,
            "prefill_tps": config.prefill_tps,
            "output_tokens": config.output_tokens,
            "echo_prefill": config.echo_prefill,
        },
    }


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME].faults.to_json())


async def _post_faults(request: web.Request) -> web.Response:
    """Change fault settings live; the body uses the CLI flag names with underscores."""
    sim = request.app[RUNTIME]
    try:
        faults = parse_faults_update(sim.faults, await read_json(request))
    except (FaultsError, ValueError) as exc:
        return error_response(400, str(exc), "invalid_request_error")
    sim.set_faults(faults)
    return web.json_response(faults.to_json())


__all__ = ["RUNTIME", "SimConfig", "create_app"]
