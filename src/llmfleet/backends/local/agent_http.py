"""The agent's HTTP routes on its unix socket; thin wrappers over ``Agent``.

Ids in the path and the query (``{id}``, ``{env}``, ``?environment=``) are checked by
one middleware before any handler runs: they become file names and log lookups.
A request that would add to what the agent runs is refused with 507 and the cause
while its table cannot be saved (a restarted agent could not adopt what it started);
one that stops or reads things never is. An unexpected failure is answered with its
cause too, not aiohttp's "Server got itself in trouble".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from llmfleet.backends.local.agent import STOP_STEP_S, Agent, bounded
from llmfleet.backends.local.process import tail_lines
from llmfleet.backends.local.upgrade_ticks import UpgradeTicker, tick_period_from_env
from llmfleet.backends.local.wire import check_id, spec_from_json
from llmfleet.errors import GpuShortageError
from llmfleet.observe.local import add_observe_routes

AGENT_KEY: web.AppKey[Agent] = web.AppKey("agent", Agent)
UNSAVED_HINT = (
    "free space on that disk, or make the folder writable again; the agent keeps "
    "supervising and saves it as soon as it can"
)
log = logging.getLogger(__name__)
MAX_LONG_POLL_S = 60.0
PATH_IDS = {"id": "replica id", "env": "environment"}


def _agent(request: web.Request) -> Agent:
    return request.app[AGENT_KEY]


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


@web.middleware
async def check_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """400 for an id that is not a plain name, before any handler sees it."""
    try:
        for key, field in PATH_IDS.items():
            if key in request.match_info:
                check_id(field, request.match_info[key])
        if "environment" in request.query:
            check_id("environment", request.query["environment"])
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc
    return await handler(request)


@web.middleware
async def name_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A handler's unexpected error, answered with its cause (and logged in full)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        body = {"error": f"{type(exc).__name__}: {exc}", "hint": "see the agent's log"}
        return web.json_response(body, status=500)


def _unsaved(problem: str) -> web.Response:
    """507: the table cannot be saved, so the agent takes on nothing new."""
    return web.json_response({"error": problem, "hint": UNSAVED_HINT}, status=507)


async def info(request: web.Request) -> web.Response:
    agent = _agent(request)
    problems = [agent.table.problem] if agent.table.problem else []
    return web.json_response(
        {
            "pid": os.getpid(),
            "home": str(agent.home),
            "generation": agent.generation,
            "problems": problems,
        }
    )


async def list_replicas(request: web.Request) -> web.Response:
    agent = _agent(request)
    await _maybe_wait(agent, request)
    environment = request.query.get("environment")
    lines = int(request.query.get("log_lines", "0"))
    statuses = [
        m.status(log_lines=lines).to_json()
        for m in agent.replicas.processes.values()
        if environment is None or m.spec.environment == environment
    ]
    failed = [f.to_json() for f in agent.failed.of(environment)]
    body = {"generation": agent.generation, "replicas": statuses, "failed": failed}
    return web.json_response(body)


async def start_replica(request: web.Request) -> web.Response:
    try:
        spec = spec_from_json(await request.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad_request(f"malformed replica spec: {exc}") from exc
    problem = _agent(request).table.save()
    if problem is not None:
        return _unsaved(problem)
    try:
        managed = _agent(request).start_replica(spec)
    except GpuShortageError as exc:
        return web.json_response({"error": exc.message, "hint": exc.hint}, status=422)
    return web.json_response(managed.status().to_json(), status=201)


async def stop_replica(request: web.Request) -> web.Response:
    body = await request.json() if request.can_read_body else {}
    drain = float(body.get("drain_timeout_s", 30.0))
    await _agent(request).replicas.stop(request.match_info["id"], drain_timeout_s=drain)
    return web.json_response({"stopped": request.match_info["id"]})


async def replica_logs(request: web.Request) -> web.Response:
    agent = _agent(request)
    replica_id = request.match_info["id"]
    lines = int(request.query.get("lines", "100"))
    managed = agent.replicas.processes.get(replica_id) or agent.gateways.processes.get(replica_id)
    if managed is None:
        path = _find_log(agent.home, replica_id)
        if path is None:
            raise web.HTTPNotFound(
                text='{"error": "no such replica"}', content_type="application/json"
            )
    else:
        path = managed.log_path
    return web.json_response({"lines": tail_lines(path, lines=lines)})


def _find_log(home: Path, replica_id: str) -> Path | None:
    matches = sorted((home / "logs").glob(f"*/{replica_id}.log"))
    return matches[0] if matches else None


async def get_environment(request: web.Request) -> web.Response:
    agent = _agent(request)
    env = request.match_info["env"]
    await _maybe_wait(agent, request)
    body = _environment_body(agent, env)
    if request.query.get("engine_keys") == "1":  # the gateway's poll, on this owner-only socket
        body["engine_keys"] = agent.engine_keys(env)
    return web.json_response(body)


async def _maybe_wait(agent: Agent, request: web.Request) -> None:
    """Long-poll: with ``wait_generation=G`` answer once the generation differs from G."""
    if "wait_generation" in request.query:
        timeout = min(float(request.query.get("timeout", "25")), MAX_LONG_POLL_S)
        await agent.wait_change(int(request.query["wait_generation"]), timeout_s=timeout)


def _environment_body(agent: Agent, env: str) -> dict[str, Any]:
    config = agent.environments.get(env, {})
    return {
        "generation": agent.generation,
        "services": config.get("services", {}),
        "continuation": config.get("continuation", {}),
        "observability": config.get("observability"),
        "costs": config.get("costs"),
        "replicas": [
            m.status().to_json()
            for m in agent.replicas.processes.values()
            if m.spec.environment == env
        ],
        "failed": [f.to_json() for f in agent.failed.of(env)],
    }


async def put_environment(request: web.Request) -> web.Response:
    agent = _agent(request)
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("services"), dict):
        raise _bad_request("body must be an object with 'services'")
    try:
        for name in body["services"]:
            check_id("service", name)
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc
    config = {
        "services": body["services"],
        "continuation": body.get("continuation", {}),
        "observability": body.get("observability"),
        "costs": body.get("costs"),
        "spec_file": body.get("spec_file"),
    }
    problem = agent.set_environment(request.match_info["env"], config)
    if problem is not None:
        return _unsaved(problem)
    agent.failed.keep_services(request.match_info["env"], body["services"])
    await agent.observer.configure(
        request.match_info["env"], body["services"], body.get("observability"), body.get("costs")
    )
    agent.changed()
    return web.json_response({"generation": agent.generation})


async def delete_environment(request: web.Request) -> web.Response:
    agent = _agent(request)
    agent.environments.pop(request.match_info["env"], None)
    agent.failed.forget(request.match_info["env"])
    agent.observer.forget(request.match_info["env"])
    agent.changed()
    return web.json_response({"generation": agent.generation})


async def list_gateways(request: web.Request) -> web.Response:
    agent = _agent(request)
    lines = int(request.query.get("log_lines", "0"))
    return web.json_response(
        {
            "gateways": [
                m.status(log_lines=lines).to_json() for m in agent.gateways.processes.values()
            ]
        }
    )


async def put_gateway(request: web.Request) -> web.Response:
    problem = _agent(request).table.save()
    if problem is not None:
        return _unsaved(problem)
    managed = await _agent(request).run_gateway(request.match_info["env"], await request.json())
    return web.json_response(managed.status().to_json())


async def delete_gateway(request: web.Request) -> web.Response:
    await _agent(request).gateways.stop(f"gateway-{request.match_info['env']}", drain_timeout_s=0)
    return web.json_response({"stopped": request.match_info["env"]})


async def shutdown(request: web.Request) -> web.Response:
    agent = _agent(request)
    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(agent.shutdown()))
    return web.json_response({"stopping": True})


def build_app(agent: Agent) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[name_failures, check_ids])
    app[AGENT_KEY] = agent
    app.router.add_get("/v1/agent", info)
    app.router.add_get("/v1/replicas", list_replicas)
    app.router.add_post("/v1/replicas", start_replica)
    app.router.add_post("/v1/replicas/{id}/stop", stop_replica)
    app.router.add_get("/v1/replicas/{id}/logs", replica_logs)
    app.router.add_get("/v1/environments/{env}", get_environment)
    app.router.add_put("/v1/environments/{env}", put_environment)
    app.router.add_delete("/v1/environments/{env}", delete_environment)
    app.router.add_get("/v1/gateways", list_gateways)
    app.router.add_put("/v1/gateways/{env}", put_gateway)
    app.router.add_delete("/v1/gateways/{env}", delete_gateway)
    app.router.add_post("/v1/shutdown", shutdown)
    add_observe_routes(app, agent.observer)
    return app


async def serve(home: Path, *, socket_name: str) -> None:
    """Serve until shut down (``POST /v1/shutdown`` or SIGTERM)."""
    socket_path = home / socket_name
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    async with aiohttp.ClientSession() as session:
        agent = Agent(home=home, session=session)
        # shutdown_timeout: a handler still running at the end gets 5 s, not aiohttp's 60.
        runner = web.AppRunner(build_app(agent), access_log=None, shutdown_timeout=5)
        await runner.setup()
        old_umask = os.umask(0o077)  # the socket is this user's only
        try:
            await web.UnixSite(runner, str(socket_path)).start()
        finally:
            os.umask(old_umask)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(agent.shutdown()))
        agent.restore()
        await agent.observer.start(agent.environments)
        upgrades = UpgradeTicker(
            home=home, environments=lambda: agent.environments,
            period_s=tick_period_from_env(os.environ),
        )  # fmt: skip
        upgrades.start()
        with contextlib.suppress(OSError):  # a full disk under the log: serve all the same
            print(f"llmfleet agent {os.getpid()} serving on {socket_path}", flush=True)
        await agent.stopped.wait()
        try:
            steps = (("the upgrade ticker", upgrades.stop), ("the observer", agent.observer.stop))
            for what, step in steps:
                try:
                    await bounded(f"stopping {what}", step(), timeout_s=STOP_STEP_S)
                except Exception:
                    log.exception("stopping %s failed", what)
        finally:
            await runner.cleanup()
            log.info("agent stopped")
    with contextlib.suppress(OSError):  # gone with a deleted home, or never made
        socket_path.unlink()
