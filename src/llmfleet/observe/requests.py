"""What the gateway does per request for observability: spans and one log line.

The gateway holds a ``RequestObserver`` only when tracing or request logs are on
(``None`` otherwise, so the hot path pays one ``is None`` check). Settings come
from the environment the agent gives the gateway process (``observe.process_env.gateway_env``):
``LLMFLEET_OTLP_ENDPOINT``, ``LLMFLEET_REQUEST_LOGS``, ``LLMFLEET_LOG_PROMPTS``, and
the cap of the log file the lines go to, ``LLMFLEET_LOG_MAX_BYTES`` and
``LLMFLEET_LOG_FILES`` (``observe.rotation``).

This module knows nothing of the gateway's classes: it reads the few attributes
it needs from the call object (``service``, ``path``, ``body``, ``started_at``,
``attempts``, ``replica``, ``trace``; and when present ``received_precise``,
``first_token_at``, ``key_name``, ``request_id``), so the gateway can use it without
an import cycle.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from llmfleet.observe.logs import JsonLinesBuffer, request_fields
from llmfleet.observe.rotation import stderr_rotator
from llmfleet.observe.tracing import RequestTrace, Tracing, build_tracing, head_ids

LOGGER = "llmfleet.gateway.requests"


class RequestObserver:
    """Tracing and request logs of one gateway process."""

    def __init__(
        self,
        *,
        tracing: Tracing | None,
        lines: JsonLinesBuffer | None,
        log_prompts: bool,
        clock: Callable[[], float],
    ) -> None:
        self.tracing = tracing
        self.lines = lines
        self.log_prompts = log_prompts
        self.clock = clock

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, environment: str, clock: Callable[[], float]
    ) -> RequestObserver | None:
        """The observer the environment asks for, or None when nothing is on."""
        tracing = build_tracing(
            env.get("LLMFLEET_OTLP_ENDPOINT"),
            service_name=f"llmfleet-gateway-{environment}",
            sample_ratio=float(env.get("LLMFLEET_TRACE_SAMPLE_RATIO", "1")),
        )
        log_requests = env.get("LLMFLEET_REQUEST_LOGS") == "1"  # the agent sets it; unset: off
        if tracing is None and not log_requests:
            return None
        lines = (
            JsonLinesBuffer(
                sys.stderr,
                service_name="llmfleet-gateway",
                logger=LOGGER,
                rotator=stderr_rotator(env),
            )
            if log_requests
            else None
        )
        return cls(
            tracing=tracing,
            lines=lines,
            log_prompts=env.get("LLMFLEET_LOG_PROMPTS") == "1",
            clock=clock,
        )

    def start(
        self, call: Any, traceparent: str | None = None, tracestate: str | None = None
    ) -> None:
        """Start the request's trace, child of the client's ``traceparent`` header when it
        sent one: a sampled request's spans (``call.trace``; its header lines for the
        engine are set per attempt), or for one outside the sample the header lines
        that carry its ids (``call.upstream_head``), the same for every attempt."""
        tracing = self.tracing
        if tracing is None:
            return
        trace = tracing.request(
            service=call.service, path=call.path, traceparent=traceparent, tracestate=tracestate
        )
        if type(trace) is bytes:
            call.upstream_head = trace
        else:
            call.trace = trace

    def close(self) -> None:
        """Write the lines and send the spans still buffered (at process exit)."""
        if self.lines is not None:
            self.lines.flush()
        if self.tracing is not None:
            self.tracing.shutdown()

    def finish(
        self,
        call: Any,
        status: str | None,
        usage: Mapping[str, Any] | None,
        error: BaseException | None,
    ) -> None:
        """End the trace and write the request's log line. ``status`` is the one the
        request was answered (or counted) with; None: the ``error``'s, else 500."""
        trace: RequestTrace | None = call.trace
        if trace is None and self.lines is None:
            return  # most requests with logs off: no spans to end, no line to write
        if status is None or (error is not None and status == "200"):
            code = int(getattr(error, "status", 0) or 500)
        else:
            code = int(status)
        if trace is not None:
            trace.end(code, usage)
        if self.lines is None:
            return
        fields = request_fields(
            service=call.service,
            replica=call.replica,
            status=code,
            duration_s=_duration_s(call, self.clock),
            ttft_s=_ttft_s(call),
            usage=usage,
            prompt=_prompt(call.body) if self.log_prompts else None,
            key_name=getattr(call, "key_name", None),
            request_id=getattr(call, "request_id", None) or None,
        )
        fields["llmfleet.failed_attempts"] = len(call.attempts)
        if trace is not None:
            fields["trace.id"], fields["span.id"] = trace.ids
        elif call.upstream_head:  # outside the sample: the ids the engine was sent
            fields["trace.id"], fields["span.id"] = head_ids(call.upstream_head)
        self.lines.write(f"{call.service} {call.path} {code}", fields)


def _duration_s(call: Any, clock: Callable[[], float]) -> float:
    """Since the request was admitted: by ``time.perf_counter`` when the call noted it
    (uvloop's loop clock counts whole milliseconds), else by the observer's clock."""
    precise = getattr(call, "received_precise", None)
    if precise is not None:
        return time.perf_counter() - float(precise)
    return clock() - float(call.started_at)


def _ttft_s(call: Any) -> float | None:
    first = getattr(call, "first_token_at", None)
    return None if first is None else float(first) - float(call.started_at)


def _prompt(body: Mapping[str, Any]) -> Any:
    return body.get("messages", body.get("prompt"))
