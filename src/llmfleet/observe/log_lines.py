"""The JSON log lines llmfleet writes (``observe.logs``), read back for people; pure.

A gateway's log holds one ECS JSON object per line: records of its own and one
line per request. Folded at a terminal's width they are unreadable, so
``llmfleet logs`` shows each as time, level, message and request id, with the few
fields that say what happened to a request; ``--raw`` prints them as written.
Lines that are not a JSON object (an engine's own output, a traceback) are left
as they are (``read_log_line`` returns None for them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

REQUEST_ID_FIELDS = ("http.request.id", "trace.id")
"""Where a line's request id is: the id answered in ``x-request-id``, else the trace."""

SUMMARY_FIELDS = (
    ("http.response.status_code", "status"),
    ("llmfleet.service", "service"),
    ("llmfleet.replica", "replica"),
    ("llmfleet.key", "key"),
    ("llmfleet.prompt_tokens", "prompt_tokens"),
    ("llmfleet.completion_tokens", "completion_tokens"),
    ("llmfleet.failed_attempts", "failed_attempts"),
)
"""Fields shown after the message, as ``name=value``, when a line has them."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One JSON log line, read: what a person needs first, then the rest by name."""

    timestamp: str
    level: str
    message: str
    request_id: str | None = None
    duration_ms: float | None = None
    summary: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def read_log_line(line: str) -> LogEntry | None:
    """``line`` as a ``LogEntry``, or None when it is not a JSON object (print it as is)."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        body = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    return LogEntry(
        timestamp=str(body.get("@timestamp", "")),
        level=str(body.get("log.level", "")),
        message=str(body.get("message", "")),
        request_id=_first(body, REQUEST_ID_FIELDS),
        duration_ms=_duration_ms(body.get("event.duration")),
        summary=tuple(
            (name, str(body[key])) for key, name in SUMMARY_FIELDS if body.get(key) is not None
        ),
        error=_error(body),
        fields=body,
    )


def _first(body: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if body.get(key):
            return str(body[key])
    return None


def _duration_ms(nanoseconds: Any) -> float | None:
    """ECS ``event.duration`` is in nanoseconds."""
    if isinstance(nanoseconds, int | float) and not isinstance(nanoseconds, bool):
        return nanoseconds / 1e6
    return None


def _error(body: dict[str, Any]) -> str | None:
    kind, message = body.get("error.type"), body.get("error.message")
    if kind is None and message is None:
        return None
    return f"{kind}: {message}" if kind and message else str(kind or message)
