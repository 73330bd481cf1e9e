"""Alert notifications in Alertmanager's webhook format, sent with retries.

Receivers that already take Alertmanager's webhooks (PagerDuty and Slack
bridges, custom handlers) take ours unchanged: version "4", ``status``,
``alerts[]`` with labels, annotations, ``startsAt``/``endsAt``, ``groupKey``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from llmfleet.observe.alerts import Alert
from llmfleet.spec.observability import Webhook

log = logging.getLogger("llmfleet.alerts")
ZERO_TIME = "0001-01-01T00:00:00Z"


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return ZERO_TIME
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def alertmanager_payload(alerts: Sequence[Alert], *, external_url: str) -> dict[str, Any]:
    """The webhook body for alerts sharing one alertname; pure. Times are epoch seconds."""
    name = alerts[0].name
    common = dict(set.intersection(*(set(a.labels) for a in alerts)))
    status = "firing" if any(a.state == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "llmfleet",
        "groupLabels": {"alertname": name},
        "commonLabels": common,
        "commonAnnotations": dict(set.intersection(*(set(a.annotations) for a in alerts))),
        "externalURL": external_url,
        "alerts": [_alert_body(a, external_url) for a in alerts],
    }


def _alert_body(alert: Alert, external_url: str) -> dict[str, Any]:
    labels = dict(alert.labels)
    return {
        "status": "resolved" if alert.state == "resolved" else "firing",
        "labels": labels,
        "annotations": dict(alert.annotations),
        "startsAt": _iso(alert.fired_at or alert.active_since),
        "endsAt": _iso(alert.ends_at),
        "generatorURL": external_url,
        "fingerprint": hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16],
    }


def group_by_name(alerts: Sequence[Alert]) -> list[list[Alert]]:
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.name, []).append(alert)
    return list(groups.values())


class Notifier:
    """Posts payloads to every webhook; a receiver that is down is retried, then logged."""

    def __init__(
        self, session: aiohttp.ClientSession, *, external_url: str, backoff_s: float = 0.5
    ) -> None:
        self._session = session
        self.external_url = external_url
        self.backoff_s = backoff_s

    async def notify(self, alerts: Sequence[Alert], webhooks: Sequence[Webhook]) -> None:
        for alert in alerts:
            log.warning(
                "alert %s %s: %s",
                alert.name,
                alert.state,
                dict(alert.annotations).get("summary", ""),
                extra={"event.dataset": "llmfleet.alerts", "labels": dict(alert.labels)},
            )
        payloads = [
            alertmanager_payload(g, external_url=self.external_url) for g in group_by_name(alerts)
        ]
        await asyncio.gather(*(self._post(hook, body) for hook in webhooks for body in payloads))

    async def _post(self, hook: Webhook, body: dict[str, Any]) -> bool:
        timeout = aiohttp.ClientTimeout(total=hook.timeout_s)
        for attempt in range(1, hook.attempts + 1):
            try:
                async with self._session.post(hook.url, json=body, timeout=timeout) as response:
                    if response.status < 500:
                        return response.status < 300
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.info("webhook %s attempt %d failed: %s", hook.url, attempt, exc)
            if attempt < hook.attempts:
                await asyncio.sleep(self.backoff_s * attempt)
        log.error("webhook %s gave up after %d attempts", hook.url, hook.attempts)
        return False
