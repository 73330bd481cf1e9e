"""Generation endpoints of the sim engine: chat and completions, streaming or not.

Answers come from ``answers.plan_answer`` (pure); this module only adds what a
real engine adds around them: a slot (or a place in the queue), time to first
token, decode pacing, the process-wide token count that arms the crash and
hang faults, and metrics once per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from llmfleet.engines.sim.answers import (
    DONE,
    Answer,
    ChunkEncoder,
    ResponseHeader,
    completion_body,
    plan_answer,
    usage_body,
)
from llmfleet.engines.sim.parsing import (
    GenerationRequest,
    RequestError,
    parse_chat,
    parse_completion,
)
from llmfleet.engines.sim.runtime import RUNTIME, SimConfig, SimRuntime

Parser = Callable[[object], GenerationRequest]
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def error_response(status: int, message: str, kind: str) -> web.Response:
    """An OpenAI-style error body (``code`` is the HTTP status, as llama-server sends)."""
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status)


async def read_json(request: web.Request) -> object:
    """The request body as JSON; raises ``RequestError`` (a ``ValueError``) if it is not."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from exc


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``."""
    return await _generate(request, parse_chat)


async def completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/completions``."""
    return await _generate(request, parse_completion)


@dataclass(frozen=True)
class Reply:
    """Everything decided about one response before its tokens are released."""

    header: ResponseHeader
    answer: Answer
    usage: dict[str, Any]
    arrived: float
    """loop time the request arrived; time to first token is measured from it."""
    include_usage: bool


async def _generate(request: web.Request, parse: Parser) -> web.StreamResponse:
    """Answer one generation request: admission checks, then a slot, then tokens."""
    sim = request.app[RUNTIME]
    arrived = sim.now()
    refusal = await _refusal(sim, request)
    if refusal is not None:
        return refusal
    try:
        generation = parse(await read_json(request))
        answer = _plan(sim.config, generation)
    except ValueError as exc:  # bad JSON, bad UTF-8 and RequestError alike
        sim.metrics.count_request(400)
        return error_response(400, str(exc), "invalid_request_error")
    async with sim.slot():
        cached = sim.prefix_cache.admit(generation.prompt_words)
        sim.metrics.prompt_tokens.inc(answer.prompt_tokens)
        await sim.prefill(answer.prompt_tokens - cached)
        sim.metrics.count_request(200)
        reply = _reply(sim, generation, answer, cached=cached, arrived=arrived)
        if generation.stream:
            return await _stream(request, sim, reply)
        return await _respond(sim, reply)


async def _refusal(sim: SimRuntime, request: web.Request) -> web.Response | None:
    """503 while loading, a simulated 500 at --error-rate, else None."""
    if sim.loading():
        sim.metrics.count_request(503)
        return error_response(503, "Loading model", "unavailable_error")
    if sim.roll_error():
        await request.read()  # drain the body so the connection stays usable
        sim.metrics.count_request(500)
        return error_response(500, "simulated internal error (error_rate)", "server_error")
    return None


def _plan(config: SimConfig, generation: GenerationRequest) -> Answer:
    return plan_answer(
        generation,
        output_tokens=config.output_tokens,
        echo_prefill=config.echo_prefill,
        context=config.context,
    )


def _reply(
    sim: SimRuntime, generation: GenerationRequest, answer: Answer, *, cached: int, arrived: float
) -> Reply:
    header = ResponseHeader(
        id=sim.new_id("chatcmpl" if generation.chat else "cmpl"),
        created=int(sim.wall_clock()),
        model=sim.config.model_name,
        chat=generation.chat,
    )
    usage = usage_body(
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=len(answer.tokens),
        cached_tokens=cached,
    )
    return Reply(header, answer, usage, arrived, generation.include_usage)


async def _respond(sim: SimRuntime, reply: Reply) -> web.Response:
    """The whole answer as one JSON body, once every token has been 'generated'."""
    answer = reply.answer
    if sim.can_burst():
        _burst(sim, reply)
    else:
        pacer = sim.pacer(reply.arrived, len(reply.answer.tokens))
        try:
            for index in range(len(answer.tokens)):
                await pacer.release(index)
                sim.after_tokens()
        finally:
            pacer.finish()
    text = answer.echo + "".join(answer.tokens)
    body = completion_body(
        reply.header, text=text, finish_reason=answer.finish_reason, usage=reply.usage
    )
    return web.Response(text=json.dumps(body), content_type="application/json")


async def _stream(request: web.Request, sim: SimRuntime, reply: Reply) -> web.StreamResponse:
    """SSE: role chunk, echoed prefill, one chunk per token, finish, usage, [DONE].

    A client that goes away makes a write raise (or, with handler cancellation,
    cancels this task); either way the slot is released by ``sim.slot``.

    When every token is due at once (``can_burst``), the whole stream is one
    response with a length: headers and events in one write, as an engine
    whose tokens were all ready would send them. Chunked framing would cost
    three writes (head, events, terminator) and so three wake-ups of the
    reader, which the gateway's overhead bench would count as the gateway's.
    """
    encoder = ChunkEncoder(reply.header)
    opening, closing = _frame(encoder, reply)
    if sim.can_burst():
        _burst(sim, reply)
        tokens = "".join(encoder.content(token) for token in reply.answer.tokens)
        return web.Response(body=(opening + tokens + closing).encode(), headers=SSE_HEADERS)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    try:
        await response.write(opening.encode())
        await _write_paced(response, sim, reply, encoder)
        await response.write(closing.encode())
    except ConnectionResetError:
        pass  # the client left; nothing to answer, the slot is freed on the way out
    return response


def _frame(encoder: ChunkEncoder, reply: Reply) -> tuple[str, str]:
    """The chunks before the first token (role, echoed prefill) and after the last."""
    echo = reply.answer.echo
    opening = encoder.role() + (encoder.content(echo) if echo else "")
    closing = encoder.finish(reply.answer.finish_reason)
    if reply.include_usage:
        closing += encoder.usage(reply.usage)
    return opening, closing + DONE


async def _write_paced(
    response: web.StreamResponse, sim: SimRuntime, reply: Reply, encoder: ChunkEncoder
) -> None:
    """One chunk per token, each when due; a token counts once it has been written,
    so --crash-after-tokens N lets exactly N tokens reach the client."""
    pacer = sim.pacer(reply.arrived, len(reply.answer.tokens))
    try:
        for index, token in enumerate(reply.answer.tokens):
            await pacer.release(index)
            await response.write(encoder.content(token).encode())
            sim.after_tokens()
    finally:
        pacer.finish()


def _burst(sim: SimRuntime, reply: Reply) -> None:
    """Account for all tokens at once: no pacing, no faults armed (the fast path)."""
    count = len(reply.answer.tokens)
    sim.metrics.time_to_first_token.observe(sim.now() - reply.arrived)
    sim.metrics.generation_tokens.inc(count)
    sim.after_tokens(count)
