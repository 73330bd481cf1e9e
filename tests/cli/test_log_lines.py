"""``llmfleet logs gateway`` shows JSON log lines as time, level, message and request id."""

from __future__ import annotations

import io
import json
import logging

from llmfleet.cli.render import log_line_text
from llmfleet.observe.log_lines import read_log_line
from llmfleet.observe.logs import EcsFormatter, JsonLinesBuffer, request_fields
from tests.fixtures.fleet import Fleet

SPEC = """services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
    replicas: 1
environments:
  production: {gateway: {port: GATEWAY_PORT}}
"""


def test_request_line_reads_as_time_level_message_and_request_id() -> None:
    """The line the gateway writes per request, read back and rendered on one line."""
    stream = io.StringIO()
    buffer = JsonLinesBuffer(stream, service_name="llmfleet-gateway", logger="requests",
                             clock=lambda: 1_700_000_000.25)  # fmt: skip
    fields = request_fields(service="chat", replica="production-chat-0-abc", status=200,
                            duration_s=0.0123, usage={"prompt_tokens": 5, "completion_tokens": 7},
                            request_id="req-42")  # fmt: skip
    buffer.write("POST /v1/chat/completions", fields)
    buffer.flush()
    entry = read_log_line(stream.getvalue().strip())
    assert entry is not None
    text = log_line_text(entry).plain
    assert text.startswith("2023-11-14 22:13:20.250Z INFO  POST /v1/chat/completions")
    assert "status=200" in text and "service=chat" in text and "12.3 ms" in text
    assert "request_id=req-42" in text
    assert "{" not in text


def test_record_with_an_error_and_a_line_that_is_not_json() -> None:
    record = logging.LogRecord("gateway", logging.ERROR, "x.py", 1, "upstream failed", (), None)
    record.created = 1_700_000_000.0
    record.msecs = 0
    try:
        raise ConnectionError("refused")
    except ConnectionError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    line = EcsFormatter(service_name="llmfleet-gateway").format(record)
    entry = read_log_line(line)
    assert entry is not None
    text = log_line_text(entry).plain
    assert "ERROR upstream failed" in text and "ConnectionError: refused" in text
    assert read_log_line("Traceback (most recent call last):") is None
    assert read_log_line("[1, 2]") is None
    assert read_log_line('{"message": "no time"}') is not None


def test_logs_gateway_renders_unless_raw(fleet: Fleet) -> None:
    """Through the CLI: rendered lines by default, the JSON as written with ``--raw``."""
    fleet.write(SPEC)
    fleet.run("apply", "--yes")
    fleet.chat("hello")
    seen: list[str] = []

    def logged() -> bool:  # request lines are written within a second
        seen[:] = [fleet.run("logs", "gateway").stdout]
        return "chat /v1/chat/completions 200" in seen[0]

    fleet.wait_for(logged, timeout=20, what="the request line")
    rendered = seen[0]
    assert '"@timestamp"' not in rendered
    raw = fleet.run("logs", "gateway", "--raw").stdout
    lines = [line for line in raw.splitlines() if line.startswith("{")]
    assert lines and all("@timestamp" in json.loads(line) for line in lines)
