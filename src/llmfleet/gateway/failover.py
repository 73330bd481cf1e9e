"""Keeping one request alive across replica failures.

Before the first token: a failed attempt (connect error, 5xx, timeout) is
retried on another replica while the service's ``RetryBudget`` allows, so
retries cannot multiply the load during an outage. After tokens were produced:
the answer is continued (``resume``) on another replica, or on the same one
once it is back within ``retries.wait_for_replica_s``; resumes keep the GPU
work already done and are bounded by ``retries.attempts``. An error that ends
the request carries every attempt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llmfleet.errors import Attempt, PermanentUpstreamError
from llmfleet.gateway import errors
from llmfleet.gateway.admission import Router
from llmfleet.gateway.health import Failure, HealthTracker
from llmfleet.gateway.metrics import GatewayMetrics
from llmfleet.gateway.resume import continuation_body, upstream_body
from llmfleet.gateway.sinks import Sink
from llmfleet.gateway.stream import StreamState, UpstreamChunkError
from llmfleet.gateway.upstream import AttemptError, UpstreamClient
from llmfleet.spec.model import ServiceSpec

log = logging.getLogger(__name__)


class RetryBudget:
    """Retries allowed as a share of requests (Finagle's retry budget).

    Each request deposits ``ratio`` of a retry, and ``min_per_s`` trickle in so a
    quiet service can still retry; a retry withdraws one. The balance is capped,
    so a burst of failures spends at most ``cap`` retries beyond the ratio.
    """

    def __init__(
        self, *, ratio: float, clock: Callable[[], float], min_per_s: float = 1.0, cap: float = 10.0
    ) -> None:
        self.ratio = ratio
        self.clock = clock
        self.min_per_s = min_per_s
        self.cap = cap
        self.balance = cap
        self._last = clock()

    def _refill(self, amount: float) -> None:
        now = self.clock()
        self.balance = min(self.cap, self.balance + amount + (now - self._last) * self.min_per_s)
        self._last = now

    def deposit(self) -> None:
        self._refill(self.ratio)

    def try_withdraw(self) -> bool:
        self._refill(0.0)
        if self.balance >= 1.0:
            self.balance -= 1.0
            return True
        return False


@dataclass
class Call:
    """One client request on its way upstream."""

    service: str
    spec: ServiceSpec
    path: str
    chat: bool
    body: dict[str, Any]
    started_at: float
    prefix_key: bytes | None = None
    resumable: bool = False
    continuation: Mapping[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    overhead_s: float = 0.0
    last_token_at: float | None = None


class Failover:
    """Runs attempts of calls; shared by every request of one gateway."""

    def __init__(
        self,
        *,
        router: Router,
        upstream: UpstreamClient,
        health: HealthTracker,
        metrics: GatewayMetrics,
        clock: Callable[[], float],
    ) -> None:
        self.router = router
        self.upstream = upstream
        self.health = health
        self.metrics = metrics
        self.clock = clock
        self.budgets: dict[str, RetryBudget] = {}

    def budget(self, call: Call) -> RetryBudget:
        budget = self.budgets.get(call.service)
        if budget is None or budget.ratio != call.spec.retries.budget_ratio:
            budget = RetryBudget(ratio=call.spec.retries.budget_ratio, clock=self.clock)
            self.budgets[call.service] = budget
        return budget

    async def stream(self, call: Call, state: StreamState, sink: Sink) -> web.StreamResponse:
        """Relay one answer into ``sink``, retrying and resuming as needed."""
        self.budget(call).deposit()
        while True:
            lease = await self.router.acquire(
                call.service, prefix_key=call.prefix_key, avoid=self._failed(call)
            )
            self.metrics.upstream.labels(call.service, lease.replica.replica_id).inc()
            try:
                await self._segment(call, state, sink, lease.replica.url, lease.replica.served_name)
                self.health.report_success(lease.replica.replica_id)
                return await sink.finish(state)
            except AttemptError as exc:
                self._record(call, lease.replica.replica_id, exc)
                if not self._may_continue(call, progressed=state.id is not None,
                                          started=sink.started):
                    return await self._give_up(call, sink)
            except PermanentUpstreamError as exc:
                if sink.started:
                    return await sink.fail(exc.body or final_error(call).body())
                raise
            finally:
                lease.release()

    async def _segment(
        self, call: Call, state: StreamState, sink: Sink, url: str, served_name: str
    ) -> None:
        state.begin_segment()
        body = call.body
        if state.resuming:
            body = continuation_body(
                call.chat, body, text=state.text, tokens=state.tokens, fields=call.continuation
            )
            self.metrics.resumed.labels(call.service).inc()
        payload = json.dumps(upstream_body(body, served_name=served_name)).encode()
        if len(call.attempts) == 0:
            call.overhead_s += self.clock() - call.started_at
        stream = await self.upstream.open_stream(url + call.path, payload, call.spec.timeouts)
        timeouts = call.spec.timeouts
        timer = self.metrics.token_timer(call.service)
        try:
            wait = timeouts.first_byte_s
            while (data := await stream.next_data(wait)) is not None:
                wait = timeouts.idle_s
                try:
                    out = state.feed(data)
                except UpstreamChunkError as exc:
                    raise AttemptError(str(exc), failure=Failure.SERVER_ERROR) from exc
                if out is not None:
                    call.last_token_at = timer.observe(self.clock(), call.last_token_at,
                                                       call.started_at)
                    await sink.send(out)
                if not stream.has_pending:
                    await sink.flush()
        finally:
            stream.close()

    def _failed(self, call: Call) -> set[str]:
        return {a.replica for a in call.attempts}

    def _record(self, call: Call, replica: str, exc: AttemptError) -> None:
        elapsed = self.clock() - call.started_at
        call.attempts.append(Attempt(replica=replica, error=str(exc), elapsed_s=elapsed))
        call.failures.append(exc.failure)
        if self.health.report_failure(replica, exc.failure):
            self.metrics.ejections.labels(call.service, replica).inc()
        log.debug("attempt on %s failed: %s", replica, exc)

    def _may_continue(self, call: Call, *, progressed: bool, started: bool) -> bool:
        """Whether another attempt follows: a resume once tokens exist, else a budgeted retry."""
        if len(call.attempts) >= call.spec.retries.attempts:
            return False
        if progressed:
            return call.resumable and call.spec.retries.resume_streams
        if started or not self.budget(call).try_withdraw():
            return False
        self.metrics.retries.labels(call.service).inc()
        return True

    async def _give_up(self, call: Call, sink: Sink) -> web.StreamResponse:
        error = final_error(call)
        if sink.started:
            return await sink.fail(error.body())
        raise error

    async def plain(self, call: Call) -> bytes:
        """POST without streaming (embeddings, tool calls): retries before the answer only."""
        self.budget(call).deposit()
        while True:
            lease = await self.router.acquire(
                call.service, prefix_key=call.prefix_key, avoid=self._failed(call)
            )
            self.metrics.upstream.labels(call.service, lease.replica.replica_id).inc()
            try:
                body = upstream_plain_body(call.body, served_name=lease.replica.served_name)
                call.overhead_s += self.clock() - call.started_at if not call.attempts else 0.0
                _, data = await self.upstream.post_json(
                    lease.replica.url + call.path, body, call.spec.timeouts
                )
                self.health.report_success(lease.replica.replica_id)
                return data
            except AttemptError as exc:
                self._record(call, lease.replica.replica_id, exc)
                if not self._may_continue(call, progressed=False, started=False):
                    raise final_error(call) from exc
            finally:
                lease.release()


def upstream_plain_body(body: Mapping[str, Any], *, served_name: str) -> bytes:
    out = dict(body)
    if served_name:
        out["model"] = served_name
    return json.dumps(out).encode()


def final_error(call: Call) -> errors.ApiError:
    """The client's error after the last attempt: 504 if they all timed out, else 503."""
    history = "; ".join(f"{a.replica}: {a.error}" for a in call.attempts[-3:])
    if call.failures and all(f == Failure.TIMEOUT for f in call.failures):
        return errors.timed_out(call.service, history)
    return errors.upstream_failed(call.service, history)


def permanent_response(exc: PermanentUpstreamError) -> web.Response:
    """An engine's own 4xx answer, passed on (it is the client's request that is wrong)."""
    return web.Response(status=exc.status, body=exc.body, content_type="application/json")
