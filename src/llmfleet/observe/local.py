"""The glue between the local agent and its ``Observer``: targets and GPU faults.

Kept here, not in the agent, so the agent's own code gains only a few lines.
A GPU fault marks the replicas on that GPU UNHEALTHY (the gateway routes only
READY replicas) and keeps them so until the fault clears; which replica sits on
which GPU is read from its ``CUDA_VISIBLE_DEVICES``, which the agent sets (a
GPU replica whose devices are unknown is marked on any GPU's fault).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from llmfleet.backends.base import ReplicaState
from llmfleet.backends.local.gpus import held_gpus, wanted_gpus
from llmfleet.observe.fleet import Target
from llmfleet.observe.ingestion import ingestion_samples
from llmfleet.observe.runtime import Observer

if TYPE_CHECKING:
    from llmfleet.backends.local.agent import Agent
    from llmfleet.backends.local.supervisor import Managed


def replica_gpus(managed: Managed) -> set[str] | None:
    """The GPU indexes a replica uses (None: some, unknown which; empty: none). The
    agent gives each GPU replica its own (``backends.local.gpus``)."""
    if not wanted_gpus(managed.spec):
        return set()
    return held_gpus(managed.spec) or None


def mark_gpu_faults(agent: Agent, faults: dict[str, str]) -> None:
    """Take replicas on faulty GPUs out of routing; give them back once it clears."""
    changed = False
    for managed in agent.replicas.processes.values():
        gpus = replica_gpus(managed)
        if gpus is not None and not gpus:
            continue
        hit = [why for gpu, why in faults.items() if gpus is None or gpu in gpus]
        fault = "; ".join(hit) or None
        if fault != managed.hardware_fault:
            managed.hardware_fault = fault
            changed = True
        if fault and managed.state is ReplicaState.READY:
            managed.state = ReplicaState.UNHEALTHY
            changed = True
    if changed:
        agent.changed()


def attach_observer(agent: Agent, session: aiohttp.ClientSession) -> Observer:
    """The agent's Observer, scraping its replicas and gateways."""

    def targets() -> list[Target]:
        procs = [*agent.replicas.processes.values(), *agent.gateways.processes.values()]
        return [Target(m.status(), m.spec.metrics_path, m.api_key) for m in procs]

    loop_time = time.monotonic
    observer = Observer(
        session=session,
        targets=targets,
        clock=loop_time,
        wall_clock=time.time,
        on_gpu_fault=lambda faults: mark_gpu_faults(agent, faults),
    )
    observer.scraper.extra.append(lambda: ingestion_samples(agent.home))
    return observer


def add_observe_routes(app: web.Application, observer: Observer) -> None:
    """``GET /v1/alerts`` (JSON) and ``GET /v1/metrics`` (the fleet endpoint) on the socket."""

    async def alerts(_request: web.Request) -> web.Response:
        return web.json_response(observer.alerts_json())

    app.router.add_get("/v1/alerts", alerts)
    app.router.add_get("/v1/metrics", observer.handle_metrics)
