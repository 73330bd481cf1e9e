"""Where the gateway learns its services and replicas: a ``ReplicaSource``.

A source is an async iterator of ``Snapshot`` objects, each a full picture
(not a delta) of one environment at a ``generation``. The gateway swaps its
route table on every snapshot, so replicas that come, go or get replaced by
``apply`` are picked up live; in-flight requests keep their replica lease.

``AgentSource`` long-polls the local agent over its unix socket::

    GET /v1/environments/{env}?wait_generation=G&timeout=25&engine_keys=1
    200 {"generation": int,
         "services": {name: ServiceSpec.model_dump(mode="json")},
         "replicas": [ReplicaStatus.to_json(), ...],
         "continuation": {service: {field: value}},
         "engine_keys": {replica_id: key}}

``engine_keys`` are the API keys the agent gave its replicas: only the agent
and the gateway know them, so nobody else on the machine can call an engine's
port. They travel over the agent's owner-only socket, asked for by name.

The agent answers at once when its generation differs from G, else after the
timeout with the same generation (the source then polls again without
yielding). ``StaticSource`` is the in-memory source for tests and benches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.exits import describe_exit
from llmfleet.gateway.pool import Origin, fetch_unix, target_of
from llmfleet.spec.model import ServiceSpec

log = logging.getLogger(__name__)
HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")
"""Visible ASCII, no space, CR or LF: what an API key may be to travel in a header."""


@dataclass(frozen=True)
class Snapshot:
    """One environment's services and replicas at ``generation``."""

    services: dict[str, ServiceSpec]
    replicas: list[ReplicaStatus]
    generation: int
    continuation: dict[str, dict[str, Any]] = field(default_factory=dict)
    """service -> body fields that make its engine continue a final assistant message."""
    engine_keys: dict[str, str] = field(default_factory=dict, repr=False)
    """replica id -> the API key its engine wants (none: it wants none); kept out of
    ``repr`` so a snapshot in a log line shows no key."""
    failed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """service -> why its replicas that failed and were stopped failed (the agent's
    ``failed``), one line each"""

    def routable(self, service: str) -> list[ReplicaStatus]:
        """Replicas of ``service`` that may get new requests (state ready)."""
        return [r for r in self.replicas if r.service == service and r.state == ReplicaState.READY]

    def why_unservable(self, service: str) -> str | None:
        """Why no replica of ``service`` will be ready soon, when that is known: each of
        its replicas crash-loops, or failed and was stopped (a failed apply), and none
        is starting or restarting. None while one may still become ready, and when
        nothing says why (a replica about to be started: waiting is right then)."""
        mine = [r for r in self.replicas if r.service == service]
        if any(r.state is not ReplicaState.CRASH_LOOP for r in mine):
            return None
        reasons = [
            f"{r.replica_id} is crash-looping ({describe_exit(r.last_exit).summary})"
            for r in mine
        ]
        reasons += self.failed.get(service, ())
        return "; ".join(reasons) or None


class ReplicaSource(Protocol):
    """Yields snapshots forever; the first one as soon as it is known."""

    def watch(self) -> AsyncIterator[Snapshot]: ...


class StaticSource:
    """A source whose snapshot the test sets with ``publish``."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._changed = asyncio.Event()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._changed.set()

    async def watch(self) -> AsyncIterator[Snapshot]:
        while True:
            self._changed.clear()
            yield self._snapshot
            await self._changed.wait()


def snapshot_from_json(body: Mapping[str, Any]) -> Snapshot:
    """Parse the agent's answer; raises ``ValueError`` (pydantic's included) if malformed."""
    services = {
        name: ServiceSpec.model_validate(spec) for name, spec in dict(body["services"]).items()
    }
    replicas = [ReplicaStatus.from_json(dict(r)) for r in body["replicas"]]
    continuation = {k: dict(v) for k, v in dict(body.get("continuation") or {}).items()}
    keys = {str(k): _header_token(v) for k, v in dict(body.get("engine_keys") or {}).items()}
    failed: dict[str, tuple[str, ...]] = {}
    for row in body.get("failed") or ():
        status = dict(row["status"])
        line = f"{status['replica_id']} failed and was stopped: {row['reason']}"
        failed[str(status["service"])] = (*failed.get(str(status["service"]), ()), line)
    return Snapshot(
        services=services,
        replicas=replicas,
        generation=int(body["generation"]),
        continuation=continuation,
        engine_keys=keys,
        failed=failed,
    )


def _header_token(key: object) -> str:
    """``key`` if it can travel in a header line, else ``ValueError`` (a malformed answer)."""
    if not isinstance(key, str) or not HEADER_TOKEN.fullmatch(key):
        raise ValueError("an engine key in the agent's answer is not a header token")
    return key


def engine_credentials(snapshot: Snapshot) -> dict[Origin, str]:
    """The API key of each replica's origin, for ``ConnectionPool.set_credentials``; pure."""
    return {
        target_of(r.url, "GET").origin: key
        for r in snapshot.replicas
        if (key := snapshot.engine_keys.get(r.replica_id))
    }


class AgentSource:
    """Long-polls the local agent; keeps the last snapshot while the agent is away."""

    def __init__(
        self,
        socket_path: str,
        environment: str,
        *,
        poll_timeout_s: float = 25.0,
        retry_s: float = 1.0,
    ) -> None:
        self.socket_path = socket_path
        self.environment = environment
        self.poll_timeout_s = poll_timeout_s
        self.retry_s = retry_s

    async def watch(self) -> AsyncIterator[Snapshot]:
        generation = -1
        while True:
            snapshot = await self._poll(generation)
            if snapshot is None:
                await asyncio.sleep(self.retry_s)
            elif snapshot.generation != generation:
                generation = snapshot.generation
                yield snapshot

    async def _poll(self, generation: int) -> Snapshot | None:
        query = urlencode(
            {"wait_generation": generation, "timeout": self.poll_timeout_s, "engine_keys": 1}
        )
        path = f"/v1/environments/{quote(self.environment)}?{query}"
        try:
            status, body = await fetch_unix(
                self.socket_path, path, timeout_s=self.poll_timeout_s + 10
            )
            if status != 200:
                log.warning("agent answered %s: %s", status, body[:500].decode(errors="replace"))
                return None
            return snapshot_from_json(json.loads(body))
        except (OSError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("agent at %s not answering: %s", self.socket_path, exc)
            return None
