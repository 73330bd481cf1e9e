"""The spec's observability section, and webhook delivery with retries."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llmfleet.errors import SpecError
from llmfleet.observe.alerts import Alert
from llmfleet.observe.notify import Notifier
from llmfleet.spec.model import IN_PLACE_FIELDS, FleetSpec
from llmfleet.spec.observability import Webhook
from llmfleet.spec.resolve import resolve_fleet


def spec(**service: Any) -> dict[str, Any]:
    return {"services": {"chat": {"model": "sim:tiny",
                                  "engine": {"kind": "sim", "version": "1.0.0"}, **service}}}


def test_alerts_slo_and_observability_resolve_into_every_environment() -> None:
    body = spec(slo={"ttft_p95_s": 0.5}, alerts=[{"kind": "ttft_p95", "for": "5m"}])
    body["observability"] = {"otlp_endpoint": "http://127.0.0.1:4318", "metrics_port": 9500,
                             "webhooks": [{"url": "http://127.0.0.1:9093/hook"}]}
    resolved = resolve_fleet(FleetSpec.model_validate(body))
    production = resolved.environment("production")
    assert production.services["chat"].alerts[0].for_s == 300
    assert production.services["chat"].slo.ttft_p95_s == 0.5
    assert resolved.environment("staging").observability.metrics_port == 9500
    assert {"alerts", "slo"} <= IN_PLACE_FIELDS  # changing them never restarts a replica


@pytest.mark.parametrize(("service", "message"), [
    ({"alerts": [{"kind": "ttft_p95", "for": "5 minutes"}]}, "for"),
    ({"alerts": [{"kind": "latency"}]}, "kind"),
    ({"slo": {"ttft_p95": 1}}, "ttft_p95"),
])
def test_mistakes_are_reported_with_their_path(service: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        resolve_fleet(FleetSpec.model_validate(spec(**service)))
    assert message in str(caught.value)


def test_bad_otlp_endpoint_is_refused() -> None:
    body = spec()
    body["observability"] = {"otlp_endpoint": "127.0.0.1:4318"}
    with pytest.raises(ValueError, match="http"):
        FleetSpec.model_validate(body)


@pytest.mark.parametrize(("labels", "message"), [
    (["team", "tier", "a", "b", "c", "d"], "at most 5"),
    (["service"], "llmfleet's own"),
    (["engine_x"], "llmfleet's own"),
    (["app.kubernetes.io/name"], "Prometheus label name"),
    (["team", "team"], "twice"),
])
def test_metric_labels_are_a_short_list_of_free_prometheus_names(
    labels: list[str], message: str
) -> None:
    """The allow-list keeps cardinality in check: few names, none that clash with ours."""
    body = spec()
    body["observability"] = {"metric_labels": labels}
    with pytest.raises(ValueError, match=message):
        FleetSpec.model_validate(body)
    body["observability"] = {"metric_labels": ["team", "tier"]}
    assert FleetSpec.model_validate(body).observability.metric_labels == ("team", "tier")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def flaky_receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Answers 503 to the first POST, 200 after: a receiver that restarts."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=503 if len(received) == 1 else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hook", received
    await runner.cleanup()


async def test_notifier_retries_a_failing_receiver_and_survives_a_dead_one(
    flaky_receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = flaky_receiver
    alert = Alert(labels=(("alertname", "LlmfleetReplicaDown"), ("service", "chat")),
                  annotations=(("summary", "down"),), state="firing", active_since=0.0,
                  for_s=0.0, value=1.0, fired_at=1.0)
    hooks = [Webhook(url=url, attempts=3), Webhook(url=f"http://127.0.0.1:{free_port()}/x",
                                                   attempts=2, timeout_s=0.5)]
    async with aiohttp.ClientSession() as session:
        await Notifier(session, external_url="http://x", backoff_s=0.01).notify([alert], hooks)
    assert len(received) == 2 and received[1]["alerts"][0]["labels"]["service"] == "chat"
