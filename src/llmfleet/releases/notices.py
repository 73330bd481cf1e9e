"""Upgrade outcomes posted to the fleet's observability webhooks.

The body is Alertmanager's webhook format (version "4"), as the alert
notifications are, so a receiver that takes llmfleet's alerts takes these too:
one alert ``LlmfleetEngineUpgrade`` whose labels name the service, engine,
versions and outcome, and whose ``startsAt`` and ``endsAt`` are the same
instant (an event, not a condition that stays firing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from llmfleet.observe.alerts import Alert
from llmfleet.observe.notify import alertmanager_payload
from llmfleet.spec.observability import Webhook

log = logging.getLogger("llmfleet.upgrades")
ALERT_NAME = "LlmfleetEngineUpgrade"


@dataclass(frozen=True)
class Notice:
    service: str
    engine: str
    old: str
    new: str
    outcome: str
    """promoted, proposed, failed or inconclusive"""
    reason: str
    report: str = ""


def notice_payload(notice: Notice, *, at: float, external_url: str = "") -> dict[str, Any]:
    """The webhook body of ``notice`` at epoch second ``at``; pure."""
    severity = "info" if notice.outcome in ("promoted", "proposed") else "warning"
    labels = (("alertname", ALERT_NAME), ("service", notice.service), ("engine", notice.engine),
              ("from", notice.old), ("to", notice.new), ("outcome", notice.outcome),
              ("severity", severity))  # fmt: skip
    summary = f"{notice.service}: {notice.engine} {notice.old} -> {notice.new} {notice.outcome}"
    annotations = (("summary", summary), ("description", notice.reason),
                   ("report", notice.report))  # fmt: skip
    alert = Alert(
        labels=labels, annotations=annotations, state="firing",
        active_since=at, for_s=0.0, value=1.0, fired_at=at, ends_at=at,
    )  # fmt: skip
    return alertmanager_payload([alert], external_url=external_url)


def post_notice(webhooks: Sequence[Webhook], notice: Notice) -> None:
    """Post ``notice`` to each webhook, with its attempts; a receiver that stays down
    is logged, never raised: the upgrade itself is done and recorded either way."""
    body = notice_payload(notice, at=time.time())
    for hook in webhooks:
        for attempt in range(1, hook.attempts + 1):
            try:
                response = httpx.post(hook.url, json=body, timeout=hook.timeout_s)
                if response.status_code < 500:
                    break
            except httpx.HTTPError as exc:
                log.info("webhook %s attempt %d failed: %s", hook.url, attempt, exc)
        else:
            log.error("webhook %s gave up after %d attempts", hook.url, hook.attempts)
