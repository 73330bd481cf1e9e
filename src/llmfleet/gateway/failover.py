"""Keeping one request alive across replica failures.

Before the first token: a failed attempt (connect error, 5xx, timeout) is
retried on another replica while the service's ``RetryBudget`` allows, so
retries cannot multiply the load during an outage. After tokens were produced:
the answer is continued (``resume``) on another replica, or on the same one
once it is back within ``retries.wait_for_replica_s``; resumes keep the GPU
work already done and are bounded by ``retries.attempts``. An error that ends
the request carries every attempt.

A 429 from an engine is back-pressure, not a fault: the attempt moves to
another replica (a budgeted retry) without ejecting the busy one, and a
request that met only busy replicas is answered 429 itself. The whole request,
queueing and every attempt included, is bounded by ``timeouts.total_s``: past
it the client gets 504 (or, mid-stream, an error event). While a started
stream waits for a replica, the client gets an SSE comment every
``keepalive_s`` so its read timeout does not fire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llmfleet.errors import Attempt, PermanentUpstreamError
from llmfleet.gateway import errors
from llmfleet.gateway.admission import Lease, Router
from llmfleet.gateway.deadline import within
from llmfleet.gateway.health import Failure, HealthTracker
from llmfleet.gateway.messages import Answer
from llmfleet.gateway.metrics import GatewayMetrics
from llmfleet.gateway.resume import DEFAULT_CONTINUATION, continuation_body, upstream_body
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
    raw: bytes = b""
    """the client's body as received: sent upstream unchanged when nothing in it changes."""
    prefix_key: bytes | None = None
    resumable: bool = False
    continuations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """the snapshot's continuation fields per service when the request came (its
    ``continuation``: read only if the answer is continued, which is rare)."""
    attempts: list[Attempt] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    overhead_s: float = 0.0
    last_token_at: float | None = None
    replica: str | None = None
    """the replica of the latest attempt, for the request log."""
    trace: Any = None
    """an ``observe.tracing.RequestTrace`` when the request is in the trace sample."""
    upstream_head: bytes = b""
    """extra header lines for the engine: ``traceparent`` of the current attempt."""
    first_token_at: float | None = None
    """when the first token reached the client (or the answer being collected)."""
    received_precise: float = field(default_factory=time.perf_counter)
    """``time.perf_counter`` when the request was admitted: the request log's duration
    needs sub-millisecond resolution, which uvloop's loop clock does not have."""
    request_id: str = ""
    key_name: str | None = None
    """the name of the caller's API key (never the key), for the request log."""

    @property
    def continuation(self) -> Mapping[str, Any]:
        """Body fields that make this service's engine continue a final assistant message."""
        fields = self.continuations.get(self.service)
        return fields if fields is not None else DEFAULT_CONTINUATION.get(self.spec.engine.kind, {})


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
        keepalive_s: float = 5.0,
    ) -> None:
        self.router = router
        self.upstream = upstream
        self.health = health
        self.metrics = metrics
        self.clock = clock
        self.keepalive_s = keepalive_s
        self.budgets: dict[str, RetryBudget] = {}

    def budget(self, call: Call) -> RetryBudget:
        budget = self.budgets.get(call.service)
        if budget is None or budget.ratio != call.spec.retries.budget_ratio:
            budget = RetryBudget(ratio=call.spec.retries.budget_ratio, clock=self.clock)
            self.budgets[call.service] = budget
        return budget

    def _remaining_s(self, call: Call) -> float:
        return call.started_at + call.spec.timeouts.total_s - self.clock()

    async def stream(self, call: Call, state: StreamState, sink: Sink) -> Answer:
        """Relay one answer into ``sink``, retrying and resuming as needed."""
        try:
            return await within(self._remaining_s(call), self._stream(call, state, sink))
        except TimeoutError:
            error = self._total_timeout(call)
            if sink.started:
                return await sink.fail(error.body())
            raise error from None

    def _total_timeout(self, call: Call) -> errors.ApiError:
        total = call.spec.timeouts.total_s
        return errors.timed_out(call.service, f"no answer within timeouts.total_s ({total:g} s)")

    async def _acquire(self, call: Call, sink: Sink | None = None) -> Lease:
        """A lease for the next attempt; a started stream gets keep-alive comments meanwhile."""
        avoid = self._failed(call)
        lease = self.router.try_acquire(call.service, prefix_key=call.prefix_key, avoid=avoid)
        if lease is None:
            acquiring = self.router.acquire(call.service, prefix_key=call.prefix_key, avoid=avoid)
            if sink is None or not sink.started:
                lease = await acquiring
            else:
                lease = await self._acquire_keeping_alive(acquiring, sink)
        self.metrics.of(call.service).count_upstream(lease.replica.replica_id)
        return lease

    async def _acquire_keeping_alive(self, acquiring: Awaitable[Lease], sink: Sink) -> Lease:
        task = asyncio.ensure_future(acquiring)
        try:
            while True:
                done, _ = await asyncio.wait((task,), timeout=self.keepalive_s)
                if done:
                    return task.result()
                await sink.keep_alive()
        finally:
            if not task.done():
                task.cancel()
                task.add_done_callback(_release_unused)

    async def _stream(self, call: Call, state: StreamState, sink: Sink) -> Answer:
        self.budget(call).deposit()
        while True:
            asked = self.clock()
            lease = await self._acquire(call, sink)
            call.replica = lease.replica.replica_id
            failed = len(call.attempts)
            span = None
            if call.trace is not None:  # sampled
                span = self._begin_span(call, lease, asked, resume=state.id is not None)
            try:
                await self._segment(call, state, sink, lease.replica.url, lease.replica.served_name)
                self.health.report_success(lease.replica.replica_id)
                return await sink.finish(state)
            except AttemptError as exc:
                self._record(call, lease.replica.replica_id, exc)
                if not self._may_continue(
                    call, progressed=state.id is not None, started=sink.started
                ):
                    return await self._give_up(call, sink)
            except PermanentUpstreamError as exc:
                if sink.started:  # a resumed segment refused: end the stream with why
                    refusal = errors.engine_refused(call.service, exc.status, exc.body)
                    return await sink.fail(refusal.body())
                raise
            finally:
                lease.release()
                if span is not None:
                    self._end_span(call, span, failed)

    def _begin_span(self, call: Call, lease: Lease, asked: float, *, resume: bool) -> Any:
        """A sampled request's routing and attempt spans; the attempt's ``traceparent``
        goes to the engine."""
        span, call.upstream_head = call.trace.begin_attempt(
            lease.replica.replica_id,
            lease.replica.url + call.path,
            resume=resume,
            waited_s=self.clock() - asked,
        )
        return span

    @staticmethod
    def _end_span(call: Call, span: Any, failed: int) -> None:
        """End an attempt's span; ``failed`` is how many attempts had failed before it."""
        error = call.attempts[-1].error if len(call.attempts) > failed else None
        call.trace.end_attempt(span, error)

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
        payload = orjson.dumps(upstream_body(body, served_name=served_name))
        if len(call.attempts) == 0:
            call.overhead_s += self.clock() - call.started_at
        stream = await self.upstream.open_stream(
            url + call.path, payload, call.spec.timeouts, call.upstream_head
        )
        timeouts = call.spec.timeouts
        timer = self.metrics.token_timer(call.service)
        try:
            wait = timeouts.first_byte_s
            while not stream.finished:
                burst = await stream.next_burst(wait)
                wait = timeouts.idle_s
                try:
                    sent = _relay(burst, state, sink)
                except UpstreamChunkError as exc:
                    raise AttemptError(str(exc), failure=Failure.SERVER_ERROR) from exc
                if sent:
                    # one observation per burst read together: events that arrived in
                    # the same read are 0 s apart, observing each would only cost time
                    call.last_token_at = timer.observe(
                        self.clock(), call.last_token_at, call.started_at
                    )
                    if call.first_token_at is None:
                        call.first_token_at = call.last_token_at
                    if not stream.finished:  # else ``sink.finish`` writes it with the end
                        await sink.flush()
        finally:
            await stream.close()

    def _failed(self, call: Call) -> Collection[str]:
        return {a.replica for a in call.attempts} if call.attempts else ()

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

    async def _give_up(self, call: Call, sink: Sink) -> Answer:
        error = final_error(call)
        if sink.started:
            return await sink.fail(error.body())
        raise error

    async def plain(self, call: Call) -> bytes:
        """POST without streaming: retries before the answer only (which is all of it)."""
        try:
            return await within(self._remaining_s(call), self._plain(call))
        except TimeoutError:
            raise self._total_timeout(call) from None

    async def _plain(self, call: Call) -> bytes:
        self.budget(call).deposit()
        while True:
            asked = self.clock()
            lease = await self._acquire(call)
            call.replica = lease.replica.replica_id
            failed = len(call.attempts)
            span = None
            if call.trace is not None:  # sampled
                span = self._begin_span(call, lease, asked, resume=False)
            try:
                body = upstream_plain_body(call, served_name=lease.replica.served_name)
                call.overhead_s += self.clock() - call.started_at if not call.attempts else 0.0
                data = await self.upstream.post_json(
                    lease.replica.url + call.path, body, call.spec.timeouts, call.upstream_head
                )
                self.health.report_success(lease.replica.replica_id)
                return data
            except AttemptError as exc:
                self._record(call, lease.replica.replica_id, exc)
                if not self._may_continue(call, progressed=False, started=False):
                    raise final_error(call) from exc
            finally:
                lease.release()
                if span is not None:
                    self._end_span(call, span, failed)


def upstream_plain_body(call: Call, *, served_name: str) -> bytes:
    """The client's own bytes when the engine knows the model by the same name."""
    if call.raw and (not served_name or served_name == call.body.get("model")):
        return call.raw
    out = dict(call.body)
    if served_name:
        out["model"] = served_name
    return orjson.dumps(out)


def _relay(burst: list[bytes], state: StreamState, sink: Sink) -> bool:
    """Pass a burst of upstream payloads through ``state`` into ``sink``; True if the
    client got something (or, for a JSON answer, would have)."""
    if not sink.forwards:
        return state.absorb(burst) if burst else False
    sent = False
    for data in burst:
        out = state.feed(data)
        if out is not None:
            sent = True
            sink.send(out)
    return sent


def _release_unused(task: asyncio.Future[Lease]) -> None:
    """A lease granted after its waiter gave up goes straight back."""
    if not task.cancelled() and task.exception() is None:
        task.result().release()


def final_error(call: Call) -> errors.ApiError:
    """The client's error after the last attempt: 504 if they all timed out, 429 if every
    replica was busy, else 503."""
    history = "; ".join(f"{a.replica}: {a.error}" for a in call.attempts[-3:])
    if call.failures and all(f == Failure.TIMEOUT for f in call.failures):
        return errors.timed_out(call.service, history)
    if call.failures and all(f == Failure.BUSY for f in call.failures):
        return errors.rate_limited(
            f"every replica of the service '{call.service}' is busy: {history}", retry_after_s=1
        )
    return errors.upstream_failed(call.service, history)
