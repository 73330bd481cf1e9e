"""The upgrades: policy in the spec and its notices to the observability webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from llmfleet.errors import SpecError
from llmfleet.releases.notices import Notice, post_notice
from llmfleet.spec import fleet_json_schema, load_spec_text
from llmfleet.spec.observability import Webhook

SPEC = """\
templates:
  base:
    upgrades:
      follow: weekly
      match: "114[0-9]{2}\\\\..*"
      window: {days: [sat], start: "02:00", end: "05:00", time_zone: TZ}
      promote: propose
services:
  chat:
    extends: base
    model: sim:tiny
    engine: {kind: sim, version: "1.0.0"}
"""


def test_a_template_policy_reaches_each_service_and_the_schema_knows_it() -> None:
    loaded = load_spec_text(SPEC.replace("TZ", "Europe/Berlin"))
    policy = loaded.resolved.environments["production"].services["chat"].upgrades
    assert policy is not None and policy.window is not None
    assert (policy.follow, policy.promote, policy.window.time_zone) == (
        "weekly", "propose", "Europe/Berlin",
    )  # fmt: skip
    assert policy.follows("11434.0.0") and not policy.follows("12000.0.0")
    partial = fleet_json_schema()["$defs"]["PartialService"]["properties"]
    assert "upgrades" in partial


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("TZ", "Europe/Berln"), "unknown time zone 'Europe/Berln'"),
        (("weekly", "monthly"), "follow"),
        (('start: "02:00"', 'start: "25:00"'), "start"),
        (("match: ", 'match: "("  # '), "not a regular expression"),
    ],
)
def test_mistakes_in_the_policy_name_file_line_and_field(
    change: tuple[str, str], message: str
) -> None:
    text = SPEC.replace("TZ", "UTC") if change[0] != "TZ" else SPEC
    with pytest.raises(SpecError) as caught:
        load_spec_text(text.replace(*change))
    shown = str(caught.value)
    assert "fleet.yaml:" in shown and "templates.base.upgrades" in shown, shown
    assert message in shown, shown


class Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_outcome_is_posted_in_alertmanager_format_and_a_dead_receiver_is_survived(
    receiver: str,
) -> None:
    notice = Notice("chat", "llamacpp", "11401.0.0", "11434.0.0", "failed",
                    "ttft p95 ratio 2.1 > 1.5", report="/r/report.html")  # fmt: skip
    dead = Webhook(url="http://127.0.0.1:9/nothing", attempts=1, timeout_s=0.5)
    post_notice([dead, Webhook(url=receiver)], notice)
    [body] = Receiver.bodies
    assert body["version"] == "4" and body["status"] == "firing"
    [alert] = body["alerts"]
    assert alert["labels"]["alertname"] == "LlmfleetEngineUpgrade"
    assert alert["labels"]["to"] == "11434.0.0" and alert["labels"]["outcome"] == "failed"
    assert alert["annotations"]["description"] == "ttft p95 ratio 2.1 > 1.5"
    assert alert["startsAt"] == alert["endsAt"]
