"""Pure parts of the local runtime: back-off, port allocation, busy detection, wire format."""

from __future__ import annotations

import socket

from llmfleet.backends.base import ReplicaSpec
from llmfleet.backends.local.ports import allocate_port, port_free
from llmfleet.backends.local.probing import busy_in_metrics
from llmfleet.backends.local.supervisor import backoff_delay
from llmfleet.backends.local.wire import spec_from_json, spec_to_json
from llmfleet.engines.base import LaunchCommand, Probe


def test_backoff_restarts_at_once_then_doubles_up_to_30_s() -> None:
    assert [backoff_delay(n) for n in range(1, 9)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_allocation_skips_our_ports_and_ports_other_programs_hold() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        assert not port_free(busy)
        port = allocate_port({busy + 1}, start=busy, port_range=(busy, busy + 10))
    assert port == busy + 2


def test_busy_gauges_read_from_prometheus_text() -> None:
    text = "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n"
    assert busy_in_metrics(text, ("llamacpp:requests_processing",)) is True
    idle = text.replace(" 2\n", " 0\n")
    assert busy_in_metrics(idle, ("llamacpp:requests_processing",)) is False
    assert busy_in_metrics(idle, ("other",)) is None


def test_replica_spec_round_trips_through_json() -> None:
    spec = ReplicaSpec(
        replica_id="production-chat-0-abc",
        environment="production",
        service="chat",
        slot=0,
        runtime_hash="h",
        engine="sim",
        engine_version="1.2.0",
        launch=LaunchCommand(argv=("python", "--port", "{port}"), env={"A": "1"}),
        readiness=(Probe("/health"), Probe("/v1/completions", body={"prompt": "x"})),
        liveness=Probe("/health"),
        metrics_path="/metrics",
        served_name="chat",
        config={"slots": 4},
        busy_series=("sim:requests_running",),
        labels={"team": "a"},
    )
    assert spec_from_json(spec_to_json(spec)) == spec
