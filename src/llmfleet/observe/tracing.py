"""OpenTelemetry spans for gateway requests, exported over OTLP/HTTP when configured.

One ``Tracing`` per gateway process (no global tracer provider): a request span
(``SERVER``), a child for the routing decision (covering the wait for a
replica), one per upstream attempt (``CLIENT``; a resume is an attempt marked
``llmfleet.resume``), and the W3C ``traceparent`` header for the engine. When
no endpoint is configured the gateway holds ``None`` instead of a ``Tracing``,
so tracing costs one ``is None`` check per request and creates no spans.

The hot path makes no SDK span. A request's spans all end before the request
does and nothing in the gateway reads a current span, so each span is a
``Record`` from its start (a flat list: names, hex ids, times, a few
attributes; the end time filled in when it ends) and is handed to a sink once
it ends. ``ExporterProcess``, the sink of a running gateway, batches records to
a child process that encodes and exports them (``span_export``): the SDK's
live span costs about 50 µs and its encoder about 40 µs per span, which on the
gateway's one event loop would come straight out of its throughput. A request
outside the sample makes no object at all, only its ``traceparent`` line.
Measured with ``bench/observe_overhead.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

LOG = logging.getLogger("llmfleet.gateway.tracing")

INTERNAL, SERVER, CLIENT = 0, 1, 2
"""``opentelemetry.trace.SpanKind`` values, as records carry them."""
UNSET, ERROR = 0, 2
"""``opentelemetry.trace.StatusCode`` values."""
_LOW_BITS = 1 << 64 | 1
"""set in each draw of a trace id and span id (192 bits: the trace id is the high 128,
the span id the low 64), so neither is all zeros (invalid in W3C trace context)."""
_SPAN_BITS = (1 << 64) - 1

FLUSHED = b"flushed\n"
"""The exporter process's answer to a flush frame."""

Record = list[Any]
"""[name, trace id hex, span id hex, parent span id hex or "", parent is remote,
kind, start ns, end ns, attributes, status code, status description, tracestate]"""


class SpanSink(Protocol):
    def add(self, record: Record) -> None: ...

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export everything added so far; False if that did not finish in time."""

    def close(self, timeout_s: float = 10.0) -> None: ...


class RequestTrace:
    """The spans of one sampled client request; the gateway calls these few methods.

    A span that has started is its record already, its end time still 0: ending it
    fills in the end and status and hands the same list to the sink."""

    __slots__ = ("_sink", "_span_id", "record", "trace_id", "trace_state")

    def __init__(self, tracing: Tracing, record: Record) -> None:
        self._sink = tracing.sink
        self._span_id = tracing.span_id
        self.record = record
        """the request's own span (SERVER)."""
        self.trace_id: str = record[1]
        self.trace_state: str = record[11]

    @property
    def ids(self) -> tuple[str, str]:
        """(trace id, span id) in hex, as logs write them (ECS trace.id / span.id)."""
        return self.trace_id, self.record[2]

    def begin_attempt(
        self, replica: str, url: str, *, resume: bool, waited_s: float
    ) -> tuple[Record, bytes]:
        """The routing decision (a span that covers the wait for a replica, ended here),
        then the attempt's span (end it with ``end_attempt``; a resume is named so) and
        the header lines that carry it to the engine, so the engine's logs and traces
        join this request: ``traceparent`` and the client's ``tracestate``."""
        now = time.time_ns()
        trace_id, parent, state = self.trace_id, self.record[2], self.trace_state
        self._sink.add(
            [
                "route",
                trace_id,
                self._span_id(),
                parent,
                False,
                INTERNAL,
                now - int(waited_s * 1e9),
                now,
                {"llmfleet.replica": replica, "llmfleet.queue_wait_s": waited_s},
                UNSET,
                None,
                state,
            ]
        )
        span_id = self._span_id()
        attributes = {"llmfleet.replica": replica, "llmfleet.resume": resume, "url.full": url}
        name = "resume" if resume else "upstream"
        span = [
            name,
            trace_id,
            span_id,
            parent,
            False,
            CLIENT,
            now,
            0,
            attributes,
            UNSET,
            None,
            state,
        ]
        return span, _head(f"00-{trace_id}-{span_id}-01", state)

    def end_attempt(self, span: Record, error: str | None = None) -> None:
        span[7] = time.time_ns()
        if error is not None:
            span[9], span[10] = ERROR, error
        self._sink.add(span)

    def end(self, status: int, usage: Mapping[str, Any] | None = None) -> None:
        record = self.record
        record[7] = time.time_ns()
        attributes = record[8]
        attributes["http.response.status_code"] = status
        if usage:
            for key in ("prompt_tokens", "completion_tokens"):
                if isinstance(usage.get(key), int):
                    attributes[f"gen_ai.usage.{key}"] = usage[key]
        if status >= 500:
            record[9] = ERROR
        self._sink.add(record)


def unsampled_head(bits: int) -> bytes:
    """The ``traceparent`` header line (flag 00) of a request outside the sample, from one
    random draw: trace id the high 128 bits, span id the low 64."""
    return b"traceparent: 00-%032x-%016x-00\r\n" % (bits >> 64, bits & _SPAN_BITS)


def head_ids(head: bytes) -> tuple[str, str]:
    """(trace id, span id) of the ``traceparent`` line that header lines for the engine
    start with: a request log names the ids the engine was sent."""
    return head[16:48].decode(), head[49:65].decode()


def _head(traceparent: str, trace_state: str) -> bytes:
    """Header lines; ``trace_state`` is the client's own header value (one line, latin-1,
    as the server decoded it)."""
    lines = f"traceparent: {traceparent}\r\n"
    if trace_state:
        lines += f"tracestate: {trace_state}\r\n"
    return lines.encode("latin-1")


def parse_traceparent(value: str) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a W3C ``traceparent``, None if invalid."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_id, span_id, flags = parts[:4]
    if version == "00" and len(parts) != 4:
        return None
    if len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
        return None
    try:
        if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
            return None
        sampled = bool(int(flags, 16) & 1)
        int(version, 16)
    except ValueError:
        return None
    return trace_id.lower(), span_id.lower(), sampled


def _trace_state(value: str | None) -> str:
    """The client's ``tracestate`` to pass on; one that could break a header line is not."""
    if not value or "\r" in value or "\n" in value:
        return ""
    return value


class Tracing:
    """Sampling and span ids for one gateway; finished spans go to ``sink``."""

    def __init__(self, sink: SpanSink, *, sample_ratio: float = 1.0) -> None:
        self.sink = sink
        self.sample_ratio = sample_ratio
        self._random = random.Random()  # noqa: S311 - trace ids, as the SDK makes them

    def span_id(self) -> str:
        return f"{self._random.getrandbits(64) | 1:016x}"

    def request(
        self,
        *,
        service: str,
        path: str,
        method: str = "POST",
        traceparent: str | None = None,
        tracestate: str | None = None,
    ) -> RequestTrace | bytes:
        """The trace of one client request, child of the client's ``traceparent`` if any
        (whose sampling decision is kept); other requests are sampled at ``sample_ratio``.

        A request outside the sample makes no spans: what it gets is the header lines
        that carry its ids to the engine with flag 00 (the client's trace id and
        ``tracestate`` when it sent them), as the SDK propagates an unsampled trace.
        Most requests take that path, so it comes first and builds no object."""
        parent = parse_traceparent(traceparent) if traceparent else None
        if parent is None:
            bits = self._random.getrandbits(192) | _LOW_BITS
            if self._random.random() >= self.sample_ratio:
                return unsampled_head(bits)
            hexed = f"{bits:048x}"
            trace_id, span_id = hexed[:32], hexed[32:]
            parent_id, state = "", ""
        else:
            trace_id, parent_id, sampled = parent
            span_id, state = self.span_id(), _trace_state(tracestate)
            if not sampled:
                return _head(f"00-{trace_id}-{span_id}-00", state)
        attributes = {"llmfleet.service": service, "url.path": path}
        record = [
            f"{method} {path}",
            trace_id,
            span_id,
            parent_id,
            bool(parent_id),
            SERVER,
            time.time_ns(),
            0,
            attributes,
            UNSET,
            None,
            state,
        ]
        return RequestTrace(self, record)

    def flush(self, timeout_s: float = 10.0) -> bool:
        return self.sink.flush(timeout_s)

    def shutdown(self) -> None:
        self.sink.close()


class ExporterProcess:
    """Records batched to a ``span_export`` child process over a pipe.

    Never blocks the event loop: records are written when ``BATCH`` are waiting
    or ``DELAY_S`` after the first; the pipe is non-blocking, what it does not
    take waits in a backlog, and beyond ``BACKLOG_LIMIT`` bytes new spans are
    dropped and counted (as the SDK's batch processor drops on a full queue). A
    child that died costs a warning; serving goes on without spans.
    """

    BATCH = 256
    DELAY_S = 0.5
    BACKLOG_LIMIT = 8 << 20

    def __init__(self, endpoint: str, *, service_name: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmfleet.observe.span_export",
                "--endpoint",
                endpoint,
                "--service-name",
                service_name,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._fd = self.proc.stdin.fileno()
        os.set_blocking(self._fd, False)
        self._records: list[Record] = []
        self._backlog = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self.dropped = 0
        self.dead = False

    def add(self, record: Record) -> None:
        if self.dead:
            return
        self._records.append(record)
        if len(self._records) >= self.BATCH:
            self._send()
        elif self._timer is None:
            self._arm()

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a tool, a test): write now
            self._send()
            return
        self._timer = loop.call_later(self.DELAY_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._send()

    def _send(self) -> None:
        if self._records:
            payload = orjson.dumps(self._records)
            if len(self._backlog) + len(payload) > self.BACKLOG_LIMIT:
                if not self.dropped:
                    LOG.warning("the span exporter falls behind: dropping spans")
                self.dropped += len(self._records)
            else:
                self._backlog += b"S" + len(payload).to_bytes(4, "big") + payload
            self._records = []
        self._write()
        if self._backlog and self._timer is None and not self.dead:
            self._arm()  # the pipe was full: try again later

    def _write(self) -> None:
        while self._backlog:
            try:
                written = os.write(self._fd, self._backlog)
            except BlockingIOError:
                return
            except OSError as exc:
                self._died(exc)
                return
            del self._backlog[:written]

    def _died(self, exc: OSError) -> None:
        LOG.warning("the span exporter process is gone (%s): no more spans are exported", exc)
        self.dead = True
        self._backlog.clear()
        self._records.clear()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write everything (blocking, briefly) and wait until the child has exported it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._send()
        if self.dead:
            return False
        self._backlog += b"F\0\0\0\0"
        os.set_blocking(self._fd, True)
        try:
            self._write()
        finally:
            os.set_blocking(self._fd, False)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        return bool(ready) and self.proc.stdout.readline() == FLUSHED

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is left, then end the child's input; it exports and exits."""
        with contextlib.suppress(OSError):
            self.flush(timeout_s)
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def build_tracing(
    endpoint: str | None, *, service_name: str, sample_ratio: float = 1.0
) -> Tracing | None:
    """OTLP/HTTP tracing to ``endpoint`` (``/v1/traces`` appended), or None when unset."""
    if not endpoint:
        return None
    sink = ExporterProcess(endpoint.rstrip("/") + "/v1/traces", service_name=service_name)
    return Tracing(sink, sample_ratio=sample_ratio)
