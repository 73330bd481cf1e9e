"""``destroy`` leaves nothing of its environment behind, and keeps what is not its own:
the agent's metrics endpoint stays on ``observability.metrics_port`` (it fell back to
9464, another project's port, and its log said to set the setting that was set)."""

from __future__ import annotations

import json
import socket
import time

import aiohttp

from llmfleet.observe.runtime import Observer
from tests.fixtures.fleet import Fleet, free_port
from tests.fixtures.specs import one_sim_service


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_destroy_stops_everything_of_its_environment_and_keeps_the_metrics_port(
    fleet: Fleet,
) -> None:
    metrics = free_port()
    fleet.write(
        one_sim_service(port="GATEWAY_PORT") + f"observability: {{metrics_port: {metrics}}}\n"
    )
    fleet.run("apply", "--yes")
    [replica] = fleet.ready()
    assert listening(metrics) and listening(fleet.gateway_port) and listening(replica.port)

    fleet.run("destroy", "--yes")
    assert not listening(fleet.gateway_port) and not listening(replica.port)
    alerts = json.loads(fleet.run("alerts", "--json").stdout)
    assert alerts["metrics"] == f"http://127.0.0.1:{metrics}/metrics"
    assert alerts["metrics_error"] == ""
    status = json.loads(fleet.run("status", "--json").stdout)
    assert status["replicas"] == [] and status["gateways"] == [] and status["failed"] == []
    config = fleet.backend.environment_config("production")
    assert config["services"] == {} and config["replicas"] == []
    history = json.loads(fleet.run("history", "--json").stdout)["revisions"]
    assert [(r["kind"], r["outcome"]) for r in history] == [
        ("destroy", "success"),
        ("apply", "success"),
    ]


async def test_a_taken_metrics_port_is_named_with_its_setting_and_the_fix() -> None:
    """The message names the setting that holds the port and what to do, not 'set
    observability.metrics_port' to a user who did."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        async with aiohttp.ClientSession() as session:
            observer = Observer(session=session, targets=list, clock=time.monotonic,
                                wall_clock=time.time)  # fmt: skip
            await observer.configure("production", {}, {"metrics_port": port})
            error = observer.metrics_error
            await observer.stop()
    assert f"cannot listen on 127.0.0.1:{port} (observability.metrics_port)" in error
    assert "choose a free port there, or null to turn the endpoint off" in error
    assert "set observability.metrics_port" not in error
