"""The local runtime's observability end to end: the real CLI, agent, gateway and sim engines.

One fleet serves every check (starting one costs seconds on this machine): the one
Prometheus endpoint, `llmfleet top` under a pseudo-terminal, a killed replica
notifying a real webhook receiver, `llmfleet alerts`, and the agent's JSON logs.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pexpect
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fixtures.fleet import Fleet, free_port

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.0.0", args: ["--ttft", "0.01", "--tps", "400"]}
    replicas: 2
    slo: {ttft_p95_s: 2.0}
    alerts:
      - {kind: replica_down, for: 0s, severity: critical}
      - {kind: ttft_p95, for: 5m}
environments:
  production:
    gateway: {port: GATEWAY_PORT}
  staging:
    gateway: {port: STAGING_PORT}
observability:
  metrics_port: METRICS_PORT
  evaluate_every_s: 0.5
  webhooks: [{url: "WEBHOOK_URL", timeout_s: 2}]
  otlp_endpoint: OTLP_URL
  trace_sample_ratio: 1.0
"""


class Receiver(BaseHTTPRequestHandler):
    """An Alertmanager-style webhook receiver: keeps every JSON body it is sent."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class OtlpReceiver(BaseHTTPRequestHandler):
    """A real OTLP/HTTP endpoint: POST /v1/traces, protobuf decoded as a collector does."""

    spans: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.spans.extend(span for rs in message.resource_spans for ss in rs.scope_spans
                          for span in ss.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def otlp() -> Iterator[tuple[str, list[Any]]]:
    spans: list[Any] = []
    handler = type("Otlp", (OtlpReceiver,), {"spans": spans})
    for url in serve(handler):
        yield url, spans


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    for url in serve(handler):
        yield f"{url}/alerts", received


def wait_for(predicate: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


EXPECTED = ("llmfleet_requests_running", "llmfleet_prompt_tokens_total",
            "llmfleet_gateway_requests_total", "llmfleet_replica_state",
            "llmfleet_replica_uptime_seconds", "llmfleet_machine_memory_used_bytes")


def missing_series(text: str) -> list[str]:
    return [name for name in EXPECTED if f"\n{name}{{" not in text and f"\n{name} " not in text]


def check_endpoint(url: str) -> str:
    """Every kind of series is there (scrapes are cached for a second: poll briefly)."""
    deadline = time.monotonic() + 10
    while missing_series(text := httpx.get(url, timeout=10).text) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert missing_series(text) == []
    assert 'llmfleet_gpus_available 0' in text  # no GPU on this machine, said plainly
    assert 'engine="sim"' in text and 'service="chat"' in text
    promtool = shutil.which("promtool")
    if promtool:
        result = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                                capture_output=True, check=False)
        assert "error" not in (result.stdout + result.stderr).lower(), result.stderr
    return text


def check_traces(fleet: Fleet, spans: list[Any]) -> None:
    """The gateway's spans reach the OTLP endpoint; its JSON request log names the trace."""
    wait_for(lambda: {"POST /v1/chat/completions", "route", "upstream"} <= {
        s.name for s in spans}, timeout=15, what="the gateway's spans at the OTLP endpoint")
    root = next(s for s in spans if s.name == "POST /v1/chat/completions")
    log_path = fleet.home / "logs" / "gateways" / "gateway-production.log"
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    requests = [x for x in lines if x.get("event.dataset") == "llmfleet.requests"]
    assert requests and requests[-1]["trace.id"] == root.trace_id.hex()
    assert requests[-1]["service.name"] == "llmfleet-gateway"
    assert "hello there" not in log_path.read_text()  # no prompts unless the spec says so


def run_top(fleet: Fleet) -> None:
    """`llmfleet top` draws a frame in a pseudo-terminal and exits 0 on Ctrl-C."""
    child = pexpect.spawn(sys.executable, ["-m", "llmfleet", "top", "-f", str(fleet.spec),
                                           "--interval", "0.3"],
                          cwd=str(fleet.root), env={**os.environ, "COLUMNS": "160",
                                                    "LINES": "40", "TERM": "xterm"},
                          dimensions=(40, 160), encoding="utf-8", codec_errors="replace",
                          timeout=30)
    try:
        child.expect("llmfleet top")
        child.expect("production/chat")
        child.expect("Ctrl-C to quit")
        time.sleep(0.8)  # at least one refresh in place
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before


@pytest.mark.timeout(180)
def test_endpoint_traces_top_and_webhook_on_a_killed_replica(
    fleet: Fleet, webhook: tuple[str, list[dict[str, Any]]], otlp: tuple[str, list[Any]]
) -> None:
    url, received = webhook
    metrics_port = free_port()
    fleet.write(SPEC.replace("METRICS_PORT", str(metrics_port)).replace("WEBHOOK_URL", url)
                .replace("OTLP_URL", otlp[0]))
    fleet.run("apply", "--yes")
    fleet.chat("hello there", max_tokens=4)
    check_traces(fleet, otlp[1])
    check_endpoint(f"http://127.0.0.1:{metrics_port}/metrics")
    run_top(fleet)

    victim = fleet.ready()[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: any(p["status"] == "firing" for p in received), timeout=20,
             what="a firing notification")
    firing = next(p for p in received if p["status"] == "firing")
    assert firing["version"] == "4" and firing["groupLabels"] == {
        "alertname": "LlmfleetReplicaDown"}
    assert firing["alerts"][0]["labels"]["replica"] == victim.replica_id
    assert firing["alerts"][0]["labels"]["severity"] == "critical"
    wait_for(lambda: any(p["status"] == "resolved" for p in received), timeout=30,
             what="the resolved notification once the replica is back")

    listed = json.loads(fleet.run("alerts", "--json").stdout)
    assert listed["resolved"][0]["labels"]["replica"] == victim.replica_id
    assert "resolved" in fleet.run("alerts").stdout
    assert listed["metrics"] == f"http://127.0.0.1:{metrics_port}/metrics"
    assert "no GPU" in listed["gpu"]["reason"]
    log_lines = (fleet.home / "agent.log").read_text().splitlines()
    events = [json.loads(line) for line in log_lines if line.startswith("{")]
    fired = [e for e in events if e.get("event.dataset") == "llmfleet.alerts"]
    assert fired and fired[0]["log.level"] == "warning"
    assert fired[0]["service.name"] == "llmfleet-agent" and "@timestamp" in fired[0]
