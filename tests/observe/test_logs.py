"""JSON-lines logs with ECS field names."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from llmfleet.observe.logs import (
    EcsFormatter,
    JsonLinesBuffer,
    configure_logging,
    request_fields,
)


def one_line(formatter: EcsFormatter, record: logging.LogRecord) -> dict[str, object]:
    line = formatter.format(record)
    assert "\n" not in line
    return dict(json.loads(line))


def record(message: str, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("llmfleet.test")
    return logger.makeRecord("llmfleet.test", logging.WARNING, __file__, 1, message, (), None,
                             extra=extra)


def test_ecs_fields_and_extras() -> None:
    """@timestamp (UTC, ms), log.level, message, service.name, pid, dataset, extras kept."""
    body = one_line(EcsFormatter(service_name="llmfleet-gateway"),
                    record("hello %s", **{"http.response.status_code": 200}))
    assert body["@timestamp"].endswith("Z") and len(body["@timestamp"]) == 24  # type: ignore[union-attr]
    assert body["log.level"] == "warning" and body["service.name"] == "llmfleet-gateway"
    assert body["event.dataset"] == "llmfleet-gateway.log" and body["ecs.version"]
    assert body["http.response.status_code"] == 200 and isinstance(body["process.pid"], int)
    assert "trace.id" not in body


def test_trace_ids_and_errors() -> None:
    formatter = EcsFormatter(service_name="s", trace_ids=lambda: ("a" * 32, "b" * 16))
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "failed", (),
                                                 __import__("sys").exc_info())
    body = one_line(formatter, rec)
    assert body["trace.id"] == "a" * 32 and body["span.id"] == "b" * 16
    assert body["error.type"] == "ValueError" and "boom" in str(body["error.stack_trace"])


def test_configure_logging_writes_json_lines() -> None:
    stream = io.StringIO()
    handler = configure_logging(service_name="llmfleet-agent", stream=stream)
    try:
        logging.getLogger("llmfleet.x").info("started", extra={"llmfleet.replica": "r0"})
    finally:
        logging.getLogger().removeHandler(handler)
    body = json.loads(stream.getvalue().splitlines()[-1])
    assert body["message"] == "started" and body["llmfleet.replica"] == "r0"


def test_request_fields_leave_prompts_out_unless_given() -> None:
    """A request-log line carries no prompt by default, and never a key."""
    fields = request_fields(service="chat", replica="r0", status=200, duration_s=0.5,
                            ttft_s=0.1, usage={"prompt_tokens": 3, "completion_tokens": 4})
    assert "llmfleet.prompt" not in fields and fields["event.duration"] == 500_000_000
    assert fields["llmfleet.completion_tokens"] == 4
    assert not any("key" in name or "authorization" in name for name in fields)
    with_prompt = request_fields(service="chat", replica=None, status=200, duration_s=0,
                                 ttft_s=None, usage=None, prompt=[{"role": "user"}])
    assert with_prompt["llmfleet.prompt"] == [{"role": "user"}]


async def test_request_lines_are_batched_and_never_more_than_a_second_late() -> None:
    """Lines wait in memory until max_lines, or one second, whichever comes first."""
    stream = io.StringIO()
    lines = JsonLinesBuffer(stream, service_name="llmfleet-gateway", logger="requests",
                            max_lines=3, clock=lambda: 1_700_000_000.25)
    lines.write("a", {"n": 1})
    lines.write("b", {"n": 2})
    assert stream.getvalue() == ""
    lines.write("c", {"n": 3})
    written = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["n"] for x in written] == [1, 2, 3]
    assert written[0]["@timestamp"] == "2023-11-14T22:13:20.250Z"
    assert written[0]["service.name"] == "llmfleet-gateway" and written[0]["log.level"] == "info"
    lines.write("d", {"n": 4})
    await asyncio.sleep(1.1)
    assert json.loads(stream.getvalue().splitlines()[-1])["n"] == 4
