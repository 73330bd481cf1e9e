"""JSON-lines logs with ECS field names, for Filebeat/Logstash into Elasticsearch.

``EcsFormatter`` writes one JSON object per line with the Elastic Common Schema
names (``@timestamp``, ``log.level``, ``message``, ``service.name``,
``process.pid``, ``log.logger``, ``event.dataset``, ``trace.id``, ``span.id``,
``error.*``), dotted at the top level as ecs-logging does, so Filebeat's ndjson
parser ships them unchanged. Fields passed with ``extra={...}`` whose names are
ECS-style (``http.response.status_code``, ``llmfleet.replica``) are kept.

Named ``logs`` rather than ``logging`` so it never shadows the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

import orjson

from llmfleet.observe.rotation import LogRotator, stderr_rotator

ECS_VERSION = "8.11.0"
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
TraceIds = Callable[[], tuple[str, str] | None]


class EcsFormatter(logging.Formatter):
    """One ECS JSON object per record; ``trace_ids`` gives the current trace, if any."""

    def __init__(self, *, service_name: str, trace_ids: TraceIds | None = None) -> None:
        super().__init__()
        self.service_name = service_name
        self.trace_ids = trace_ids

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "log.level": record.levelname.lower(),
            "message": record.getMessage(),
            "ecs.version": ECS_VERSION,
            "service.name": self.service_name,
            "process.pid": record.process,
            "log.logger": record.name,
            "event.dataset": f"{self.service_name}.log",
        }
        ids = self.trace_ids() if self.trace_ids is not None else None
        if ids is not None:
            body["trace.id"], body["span.id"] = ids
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            body["error.type"] = record.exc_info[0].__name__
            body["error.message"] = str(record.exc_info[1])
            body["error.stack_trace"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


class CappedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` whose file is rotated before a record would take it past its
    cap (``rotator``; None: never)."""

    def __init__(self, stream: IO[str], rotator: LogRotator | None = None) -> None:
        super().__init__(stream)
        self.rotator = rotator

    def emit(self, record: logging.LogRecord) -> None:
        """``StreamHandler.emit``, with room made first."""
        try:
            line = self.format(record) + self.terminator
            if self.rotator is not None:
                self.rotator.make_room(len(line.encode()))
            self.stream.write(line)
            self.flush()
        except RecursionError:
            raise
        except Exception:  # logging's way: a record never raises
            self.handleError(record)


def configure_logging(
    *,
    service_name: str,
    level: str = "INFO",
    stream: IO[str] | None = None,
    trace_ids: TraceIds | None = None,
) -> logging.Handler:
    """Route the root logger to one JSON-lines handler (replacing earlier ones).

    Without ``stream`` it writes to stderr, and when stderr is a file (the local
    agent's log of this process) that file is capped: rotated past
    ``LLMFLEET_LOG_MAX_BYTES`` (50 MiB), ``LLMFLEET_LOG_FILES`` (5) kept (``observe.rotation``).
    """
    handler = CappedStreamHandler(stream or sys.stderr)
    handler.setFormatter(EcsFormatter(service_name=service_name, trace_ids=trace_ids))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if stream is None:
        handler.rotator = stderr_rotator(os.environ)
    return handler


def request_fields(
    *,
    service: str,
    replica: str | None,
    status: int,
    duration_s: float,
    ttft_s: float | None = None,
    usage: Mapping[str, Any] | None,
    prompt: Any = None,
    key_name: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The ECS fields of one request-log line; a prompt only when the caller passes one
    (``observability.log_prompts: true``). A key's name is logged, never the key."""
    fields: dict[str, Any] = {
        "event.dataset": "llmfleet.requests",
        "llmfleet.service": service,
        "llmfleet.replica": replica,
        "http.response.status_code": status,
        "event.duration": int(duration_s * 1e9),
        "llmfleet.ttft_s": ttft_s,
    }
    if request_id:
        fields["http.request.id"] = request_id
    if key_name is not None:
        fields["llmfleet.key"] = key_name
    if usage:
        fields["llmfleet.prompt_tokens"] = usage.get("prompt_tokens")
        fields["llmfleet.completion_tokens"] = usage.get("completion_tokens")
        details = usage.get("prompt_tokens_details")
        if isinstance(details, Mapping) and details.get("cached_tokens") is not None:
            fields["llmfleet.cached_tokens"] = details["cached_tokens"]
    if prompt is not None:
        fields["llmfleet.prompt"] = prompt
    return fields


class JsonLinesBuffer:
    """ECS JSON lines for the request path, written in batches.

    ``logging`` costs tens of microseconds per record (a LogRecord, a lock, a
    write and a flush per line); at thousands of requests per second that is
    several percent of the gateway. Request lines are instead serialised with
    orjson into a buffer that is written at most once a second or every
    ``max_lines`` lines, whichever comes first, so a line is never more than a
    second late.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        service_name: str,
        logger: str,
        max_lines: int = 256,
        clock: Callable[[], float] = time.time,
        rotator: LogRotator | None = None,
    ) -> None:
        self._stream = stream
        self._rotator = rotator
        self.dropped = 0
        """lines that could not be written (a full disk): lost, never a failed request."""
        self._lines: list[bytes] = []
        self._max = max_lines
        self._clock = clock
        self._second = -1
        self._milli = -1
        self._prefix = b""
        self._stamp = b""
        common = {
            "log.level": "info",
            "ecs.version": ECS_VERSION,
            "service.name": service_name,
            "process.pid": os.getpid(),
            "log.logger": logger,
        }
        self._common = b'",' + orjson.dumps(common)[1:-1] + b","
        """the fields every line has, serialised once: a line is the timestamp, these,
        then its own fields."""
        self._timer: asyncio.TimerHandle | None = None

    def _head(self, now: float) -> bytes:
        """The timestamp and the common fields: formatted once a millisecond (lines of
        the same millisecond share it), the date part once a second."""
        milli = int(now * 1000)
        if milli != self._milli:
            self._milli = milli
            second, rest = divmod(milli, 1000)
            if second != self._second:
                self._second = second
                self._prefix = time.strftime(
                    '{"@timestamp":"%Y-%m-%dT%H:%M:%S', time.gmtime(second)
                ).encode()
            self._stamp = self._prefix + b".%03dZ" % rest + self._common
        return self._stamp

    def write(self, message: str, fields: dict[str, Any]) -> None:
        """One line: ``fields`` (taken over: ``message`` is added to it) after the
        timestamp and the common fields."""
        fields["message"] = message
        self._lines.append(self._head(self._clock()) + orjson.dumps(fields, default=str)[1:])
        if len(self._lines) >= self._max:
            self.flush()
        elif self._timer is None:
            with contextlib.suppress(RuntimeError):  # no loop: flushed by the next batch
                self._timer = asyncio.get_running_loop().call_later(1.0, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self._write(lines)
        except OSError:  # a full disk: the lines are lost, the requests are not
            self.dropped += len(lines)

    def _write(self, lines: list[bytes]) -> None:
        raw = getattr(self._stream, "buffer", None)
        if raw is None:  # a text stream only (a test's StringIO)
            self._stream.write((b"\n".join(lines) + b"\n").decode())
            self._stream.flush()
            return
        self._stream.flush()  # what logging wrote through the text layer goes first
        if self._rotator is not None:
            self._rotator.write_lines(raw, lines)
            return
        raw.write(b"\n".join(lines) + b"\n")
        raw.flush()
